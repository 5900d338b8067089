"""``voxmesh serve realtime``: the OpenAI-Realtime-compatible WebSocket edge."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from voxmesh.realtime.settings import RealtimeSettings
from voxmesh.settings_flags import add_settings_flags, flag_overrides


def add_parser(serve_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = serve_sub.add_parser(
        "realtime", help="run the OpenAI-Realtime-compatible WebSocket edge (a client of the gateway)"
    )
    add_settings_flags(p, RealtimeSettings)
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = RealtimeSettings(**flag_overrides(args, RealtimeSettings))
    except ValidationError as exc:
        print(f"voxmesh serve realtime: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    try:
        from voxmesh.realtime.server import run
    except ModuleNotFoundError as exc:
        # The edge's WebSocket server comes with the cpu extra; say so instead of a traceback.
        print(f"voxmesh serve realtime: {exc}; install it with pip install 'voxmesh[cpu]'", file=sys.stderr)
        return 2
    return run(settings)
