"""``voxmesh serve telephony``: the phone edge (Twilio Media Streams), a client of the gateway."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from voxmesh.settings_flags import add_settings_flags, flag_overrides
from voxmesh.telephony.settings import TelephonySettings


def add_parser(serve_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = serve_sub.add_parser(
        "telephony", help="run the phone edge: Twilio Media Streams over WebSocket (a client of the gateway)"
    )
    add_settings_flags(p, TelephonySettings)
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = TelephonySettings(**flag_overrides(args, TelephonySettings))
    except ValidationError as exc:
        print(f"voxmesh serve telephony: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    try:
        from voxmesh.telephony.server import run
    except ModuleNotFoundError as exc:
        # The WebSocket server comes with the cpu extra; say so instead of a traceback.
        print(f"voxmesh serve telephony: {exc}; install it with pip install 'voxmesh[cpu]'", file=sys.stderr)
        return 2
    return run(settings)
