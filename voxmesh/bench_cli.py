"""``voxmesh bench``: load levels of concurrent spoken sessions; JSON, PNG and a table."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from tqdm import tqdm

from voxmesh.bench import STAGES, machine, plot, run_level, write_report
from voxmesh.client_cli import add_token_flag
from voxmesh.mesh import Mesh


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench", help="measure latency under N concurrent sessions")
    p.add_argument("--gateway", default="127.0.0.1:50051", help="gateway to load (ignored with --spawn)")
    p.add_argument(
        "--spawn",
        choices=["cpu", "null"],
        default=None,
        help="start a private mesh first: cpu = echo + espeak, null = engines that answer at once "
        "(measures the mesh itself); also reports CPU and memory per process",
    )
    p.add_argument("--sessions", default="1,4,16,64", help="comma-separated load levels (default 1,4,16,64)")
    p.add_argument("--turns", type=int, default=3, help="turns per session (default 3)")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="soak: seconds each level runs (users keep taking turns; --turns is ignored); "
        "reports memory growth per process and latency drift",
    )
    p.add_argument("--barge-in", action="store_true", help="speak again 0.5 s into every reply")
    add_token_flag(p)
    p.add_argument("--json", default="bench-results.json", help="where to write the figures")
    p.add_argument("--plot", default="bench-results.png", help="where to write the plot ('' for none)")
    p.add_argument("--title", default="", help="title stored with the results (e.g. the machine)")
    p.set_defaults(func=_run)


def _table(level: dict[str, Any]) -> str:
    lines = [
        f"{level['sessions']} session(s): {level['turns_completed']} turns, {level['interruptions']} interrupted, "
        f"{level['turns_per_s']} turns/s, {len(level['errors'])} errors, {level['wall_s']} s",
        f"  {'stage (ms)':28s} {'p50':>8s} {'p95':>8s} {'p99':>8s}",
    ]
    rows = {**level["latency_ms"], "client_response_ms": level["client_response_ms"]}
    for stage, figures in rows.items():
        if figures:
            lines.append(
                f"  {stage[:-3]:28s} {figures['p50']:8.1f} {figures['p95']:8.1f} {figures['p99']:8.1f}"
            )
    for name, proc in level.get("processes", {}).items():
        lines.append(
            f"  {name:8s} cpu {proc['cpu_percent_mean']:6.1f} %  rss {proc['rss_mb_start']:.0f} -> "
            f"{proc['rss_mb_peak']:.0f} MB"
        )
    if drift := level.get("drift"):
        lines.append(
            f"  drift: response latency p50 {drift['response_latency_p50_first_quarter_ms']} ms (first quarter) -> "
            f"{drift['response_latency_p50_last_quarter_ms']} ms (last quarter)"
        )
    for error in level["errors"][:5]:
        lines.append(f"  error: {error}")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    try:
        levels = [int(n) for n in args.sessions.split(",") if n]
    except ValueError:
        print(
            f"voxmesh bench: --sessions must be comma-separated integers, got {args.sessions!r}",
            file=sys.stderr,
        )
        return 2
    mesh = None
    gateway, pids = args.gateway, None
    if args.spawn:
        engines = {
            "cpu": {"voxtral": "echo", "orpheus": "espeak"},
            "null": {"voxtral": "null", "orpheus": "null"},
        }
        max_sessions = str(max(levels) + 8)
        mesh = Mesh.build(
            engines[args.spawn],
            extra_args={
                name: ["--max-sessions", max_sessions] for name in ("vad", "voxtral", "orpheus", "gateway")
            },
        )
        print(f"starting a {args.spawn} mesh ...", flush=True)
        mesh.start(120)
        gateway = mesh.gateway.address
        pids = {svc.name: svc.process.pid for svc in mesh.services if svc.process}
    report: dict[str, Any] = {
        "title": args.title or f"voxmesh bench ({args.spawn or args.gateway})",
        "machine": machine(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join(sys.argv),
        "stages": list(STAGES),
        "levels": [],
    }
    try:
        for sessions in levels:
            total = None if args.duration else sessions * args.turns
            with tqdm(total=total, desc=f"{sessions:3d} sessions", unit="turn") as bar:
                level = asyncio.run(
                    run_level(
                        gateway,
                        sessions,
                        args.turns,
                        args.barge_in,
                        args.token,
                        pids,
                        lambda: bar.update(),
                        args.duration,
                    )
                )
            report["levels"].append(level)
            print(_table(level), flush=True)
            write_report(report, args.json)
    finally:
        if mesh is not None:
            mesh.stop()
    print(f"wrote {args.json}")
    if args.plot and plot(report, args.plot):
        print(f"wrote {args.plot}")
    return 0 if all(not lv["errors"] for lv in report["levels"]) else 1
