"""``voxmesh up``: the whole mesh on this machine, one process per service.

Five processes by default: vad, voxtral, orpheus, the gateway, and the
OpenAI-Realtime WebSocket edge with its browser page (``--no-realtime`` leaves
it out), so one container (the all-in-one RunPod image) serves both doors.

It restarts a service that dies (:mod:`voxmesh.supervision`) and exits with a
status from :mod:`voxmesh.exit_status` when it gives up.

The stages run with the shipped turn-taking (:mod:`voxmesh.turn_taking_defaults`:
Smart Turn, speculation, the hold on unfinished words); ``--end-of-turn silence``
goes back to silence-only endpointing. ``--vad-args "…"`` (and ``--gateway-args``,
``--voxtral-args``, ``--orpheus-args``, ``--realtime-args``) pass any flag of
``voxmesh serve NAME`` through, after the shipped ones, so they win.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass

from voxmesh.exit_status import PERMANENT, ExitStatus
from voxmesh.mesh import DEFAULT_METRICS_PORTS, DEFAULT_PORTS, EDGE, EDGE_PORT, PHONE_PORT, Mesh
from voxmesh.processes import ServiceDied
from voxmesh.supervision import RestartPolicy, Supervisor
from voxmesh.turn_taking_defaults import model_runtime_missing, stage_flags

#: Services whose flags ``--NAME-args`` passes through.
SERVICE_ARGS = ("vad", "voxtral", "orpheus", "gateway", EDGE)
#: With --base-port, the /metrics ports start this far above it.
METRICS_OFFSET = 10


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


def no_cuda_device() -> str | None:
    """Why the gpu profile has no CUDA device to use, or None when it has one (or torch is absent).

    Without torch the engines themselves refuse to start and say what to install.
    """
    try:
        import torch
    except ImportError:
        return None
    if torch.cuda.is_available():
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    hint = f", CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else ""
    build = f"a CUDA {torch.version.cuda} build" if torch.version.cuda else "a CPU-only build"
    return f"torch {torch.__version__} ({build}{hint}) finds no CUDA device"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "up", help="run vad, voxtral, orpheus, the gateway and the Realtime edge as child processes"
    )
    p.add_argument("--profile", choices=["cpu", "gpu"], default="cpu", help="engines to run (default cpu)")
    p.add_argument(
        "--host", default="127.0.0.1", help="gateway and edge interface; the stages stay on loopback"
    )
    p.add_argument("--gateway-port", type=int, default=DEFAULT_PORTS["gateway"])
    p.add_argument(
        "--base-port",
        type=int,
        default=None,
        help="use BASE..BASE+4 for gateway, vad, voxtral, orpheus and the Realtime edge, and "
        f"BASE+{METRICS_OFFSET}.. for their /metrics (so two meshes run side by side)",
    )
    p.add_argument(
        "--realtime-port",
        type=int,
        default=EDGE_PORT,
        help=f"the OpenAI-Realtime WebSocket edge and browser page (HTTP; default {EDGE_PORT})",
    )
    p.add_argument(
        "--no-realtime", action="store_true", help="do not run the WebSocket edge (gRPC gateway only)"
    )
    p.add_argument(
        "--telephony",
        type=int,
        nargs="?",
        const=PHONE_PORT,
        default=None,
        metavar="PORT",
        help=f"also run the phone edge (Twilio Media Streams at ws://HOST:PORT/twilio; default port {PHONE_PORT}; "
        "with --base-port, BASE+5)",
    )
    p.add_argument("--no-metrics", action="store_true", help="do not open the /metrics ports")
    p.add_argument(
        "--end-of-turn",
        choices=["smart-turn", "silence"],
        default=os.environ.get("VOXMESH_END_OF_TURN", "smart-turn"),
        help="smart-turn (default: the end-of-turn model, speculation and the hold on unfinished words, "
        "see voxmesh.turn_taking_defaults) or silence (vad's fixed hangover alone); env VOXMESH_END_OF_TURN",
    )
    for name in SERVICE_ARGS:
        p.add_argument(
            f"--{name}-args",
            default="",
            metavar="FLAGS",
            help=f'flags for `voxmesh serve {name}`, one string (e.g. --{name}-args="--log-level debug"); '
            "they win over the shipped ones",
        )
    p.add_argument(
        "--startup-timeout", type=float, default=600.0, help="seconds each service may take to load"
    )
    p.add_argument(
        "--allow-cpu",
        action="store_true",
        help="gpu profile: load the real models on the CPU when there is no CUDA device (far slower than real time)",
    )
    policy = RestartPolicy()
    p.add_argument(
        "--max-restarts",
        type=int,
        default=policy.max_restarts,
        help=f"restarts of one service within --restart-window before giving up (default {policy.max_restarts})",
    )
    p.add_argument(
        "--restart-window",
        type=float,
        default=policy.window_s,
        help=f"seconds over which restarts are counted (default {policy.window_s:g})",
    )
    p.set_defaults(func=_run)


def _say(line: str) -> None:
    print(f"voxmesh up: {line}", file=sys.stderr, flush=True)


def _start_failed(exc: Exception) -> int:
    """Exit status (and the lines to print) when a service does not come up."""
    if isinstance(exc, ServiceDied) and exc.returncode in PERMANENT:
        # The service's last line says what is wrong ("voxmesh serve voxtral: model ..."); the
        # rest of its log (settings, load progress) is noise here.
        print(exc.service.log_tail(1), file=sys.stderr, flush=True)
        if exc.service.name == EDGE:
            # Most often another program holds 8080 (a laptop's dev server).
            _say("--realtime-port N moves the Realtime edge, --no-realtime leaves it out")
        return int(exc.returncode)
    _say(str(exc))
    return int(ExitStatus.FAILED)


def metrics_ports(args: argparse.Namespace) -> dict[str, int]:
    """Each process's /metrics port: the defaults, or BASE+10.. with --base-port."""
    if args.base_port:
        return {name: args.base_port + METRICS_OFFSET + i for i, name in enumerate(DEFAULT_METRICS_PORTS)}
    return dict(DEFAULT_METRICS_PORTS)


def service_flags(args: argparse.Namespace) -> dict[str, list[str]]:
    """Service → extra flags: the shipped turn-taking, then the user's --NAME-args."""
    end_of_turn = args.end_of_turn
    if end_of_turn == "smart-turn" and (missing := model_runtime_missing()) is not None:
        _say(f"{missing}: silence-only endpointing")
        end_of_turn = "silence"
    flags = stage_flags(end_of_turn)
    for name in SERVICE_ARGS:
        flags[name] = flags.get(name, []) + shlex.split(getattr(args, f"{name}_args"))
    return flags


def build_mesh(args: argparse.Namespace, profile: Profile) -> Mesh:
    """The processes ``voxmesh up ARGS`` runs (not started)."""
    ports = dict(DEFAULT_PORTS)
    edge_port = args.realtime_port
    phone_port = args.telephony
    if args.base_port:
        ports = {name: args.base_port + i for i, name in enumerate(DEFAULT_PORTS)}
        edge_port = args.base_port + len(DEFAULT_PORTS)
        phone_port = None if phone_port is None else args.base_port + len(DEFAULT_PORTS) + 1
    elif args.gateway_port:
        ports["gateway"] = args.gateway_port
    return Mesh.build(
        {"voxtral": profile.voxtral_engine, "orpheus": profile.orpheus_engine},
        ports=ports,
        metrics_ports=None if args.no_metrics else metrics_ports(args),
        host=args.host,
        extra_args=service_flags(args),
        edge_port=None if args.no_realtime else edge_port,
        phone_port=phone_port,
    )


def _run(args: argparse.Namespace) -> int:
    profile = pick_profile(args.profile)
    if args.profile == "gpu" and (problem := no_cuda_device()):
        if not args.allow_cpu:
            _say(
                f"the gpu profile needs a CUDA device and {problem}: check the driver with nvidia-smi "
                "(in Docker: --gpus all), run --profile cpu, or add --allow-cpu to load the real models "
                "on the CPU (far slower than real time)"
            )
            return int(ExitStatus.NO_GPU)
        _say(f"{problem}: --allow-cpu loads the real models on the CPU (far slower than real time)")
    mesh = build_mesh(args, profile)
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
        return _start_failed(exc)

    print("voxmesh is up:")
    metrics_at = metrics_ports(args)
    for svc in mesh.services:
        metrics_note = "" if args.no_metrics else f"  metrics http://127.0.0.1:{metrics_at[svc.name]}/metrics"
        pid = svc.process.pid if svc.process else "?"
        where = f"ws://{svc.address}/v1/realtime" if svc is mesh.edge else f"grpc {svc.address}"
        if svc is mesh.phone:
            where = f"ws://{svc.address}/twilio"
        print(f"  {svc.name:8s} {where}{metrics_note}  pid {pid}  log {svc.log_path}")
    if mesh.edge is not None:
        print(
            f"Open http://{mesh.edge.address}/ for the browser page (OpenAI Realtime clients: the ws:// URL)"
        )
    print(
        f"Try: voxmesh talk question.wav -o reply.wav --gateway {mesh.gateway.address}   (Ctrl-C stops)",
        flush=True,
    )

    supervisor = Supervisor(
        mesh.services, RestartPolicy(max_restarts=args.max_restarts, window_s=args.restart_window), _say
    )
    exit_code = int(ExitStatus.OK)
    while not stopping:
        if gave_up := supervisor.check():
            svc = gave_up.service
            _say(f"{svc.name} {gave_up.reason}; stopping the mesh. The end of its log ({svc.log_path}):")
            print(svc.log_tail(), file=sys.stderr, flush=True)
            exit_code = gave_up.status
            break
        time.sleep(0.2)
    mesh.stop(progress=lambda line: print("  " + line, flush=True))
    return exit_code
