"""``voxmesh health HOST:PORT``: exit 0 if the server reports SERVING (container healthchecks)."""

from __future__ import annotations

import argparse
import sys

from voxmesh.processes import check_health


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("health", help="check a service's gRPC health (exit 0 when SERVING)")
    p.add_argument(
        "address", nargs="?", default="127.0.0.1:50051", help="host:port (default 127.0.0.1:50051)"
    )
    p.add_argument("--service", default="", help="service name to check (default: the whole server)")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for an answer")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    status = check_health(args.address, timeout_s=args.timeout, service=args.service)
    print(f"{args.address}: {status}", file=sys.stderr if status != "SERVING" else sys.stdout)
    return 0 if status == "SERVING" else 1
