"""``voxmesh up``: the whole mesh on this machine, one process per service."""

from __future__ import annotations

import argparse
import importlib.util
import signal
import sys
import time
from dataclasses import dataclass

from voxmesh.mesh import DEFAULT_METRICS_PORTS, DEFAULT_PORTS, Mesh


@dataclass(frozen=True)
class Profile:
    voxtral_engine: str
    orpheus_engine: str
    why: str


def pick_profile(name: str) -> Profile:
    """The engines a profile runs. ``gpu`` prefers vLLM and falls back to transformers."""
    if name == "cpu":
        return Profile(
            "echo", "espeak", "cpu profile: embedded engines (echo loop-back + espeak-ng), no model"
        )
    engine = "vllm" if importlib.util.find_spec("vllm") is not None else "transformers"
    why = "vllm is installed" if engine == "vllm" else "vllm is not installed (pip install 'voxmesh[gpu]')"
    return Profile(engine, engine, f"gpu profile: {engine} engines ({why})")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("up", help="run vad, voxtral, orpheus and the gateway as child processes")
    p.add_argument("--profile", choices=["cpu", "gpu"], default="cpu", help="engines to run (default cpu)")
    p.add_argument("--host", default="127.0.0.1", help="gateway interface; the stages stay on loopback")
    p.add_argument("--gateway-port", type=int, default=DEFAULT_PORTS["gateway"])
    p.add_argument(
        "--base-port", type=int, default=None, help="use BASE..BASE+3 for gateway, vad, voxtral, orpheus"
    )
    p.add_argument("--no-metrics", action="store_true", help="do not open the /metrics ports")
    p.add_argument(
        "--startup-timeout", type=float, default=600.0, help="seconds each service may take to load"
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    profile = pick_profile(args.profile)
    ports = dict(DEFAULT_PORTS)
    if args.base_port:
        ports = {name: args.base_port + i for i, name in enumerate(DEFAULT_PORTS)}
    elif args.gateway_port:
        ports["gateway"] = args.gateway_port
    mesh = Mesh.build(
        {"voxtral": profile.voxtral_engine, "orpheus": profile.orpheus_engine},
        ports=ports,
        metrics_ports=None if args.no_metrics else DEFAULT_METRICS_PORTS,
        host=args.host,
    )
    print(f"voxmesh up: {profile.why}", flush=True)

    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        mesh.start(args.startup_timeout, progress=lambda line: print("  " + line, flush=True))
    except (RuntimeError, TimeoutError) as exc:
        print(f"voxmesh up: {exc}", file=sys.stderr)
        return 1

    print("voxmesh is up:")
    for svc in mesh.services:
        metrics_note = (
            "" if args.no_metrics else f"  metrics http://127.0.0.1:{DEFAULT_METRICS_PORTS[svc.name]}/metrics"
        )
        print(f"  {svc.name:8s} grpc {svc.address}{metrics_note}  log {svc.log_path}")
    print(
        f"Try: voxmesh talk question.wav -o reply.wav --gateway {mesh.gateway.address}   (Ctrl-C stops)",
        flush=True,
    )

    exit_code = 0
    while not stopping:
        if died := mesh.exited():
            svc, reason = died
            print(f"voxmesh up: {svc.name} {reason}; stopping the mesh\n{svc.log_tail()}", file=sys.stderr)
            exit_code = 1
            break
        time.sleep(0.2)
    mesh.stop(progress=lambda line: print("  " + line, flush=True))
    return exit_code
