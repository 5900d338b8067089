"""``voxmesh serve realtime`` and ``voxmesh serve telephony``: the command line every WebSocket edge shares.

Each edge is its settings class and the module whose ``run(settings)`` serves
it; the server module is imported only to run, so ``voxmesh --help`` works on
an install without the cpu extra (the edges' WebSocket server comes with it).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass

from pydantic import ValidationError

from voxmesh.edge_settings import EdgeSettings
from voxmesh.realtime.settings import RealtimeSettings
from voxmesh.settings_flags import add_settings_flags, flag_overrides
from voxmesh.telephony.settings import TelephonySettings


@dataclass(frozen=True)
class Edge:
    name: str
    help: str
    settings: type[EdgeSettings]
    #: The module with ``run(settings) -> int``.
    server: str


EDGES = (
    Edge(
        "realtime",
        "run the OpenAI-Realtime-compatible WebSocket edge (a client of the gateway)",
        RealtimeSettings,
        "voxmesh.realtime.server",
    ),
    Edge(
        "telephony",
        "run the phone edge: Twilio Media Streams and Asterisk over WebSocket (a client of the gateway)",
        TelephonySettings,
        "voxmesh.telephony.server",
    ),
)


def add_edge_parser(serve_sub: argparse._SubParsersAction[argparse.ArgumentParser], edge: Edge) -> None:
    p = serve_sub.add_parser(edge.name, help=edge.help)
    add_settings_flags(p, edge.settings)
    p.set_defaults(func=lambda args: _serve(edge, args))


def _serve(edge: Edge, args: argparse.Namespace) -> int:
    try:
        settings = edge.settings(**flag_overrides(args, edge.settings))
    except ValidationError as exc:
        print(f"voxmesh serve {edge.name}: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    try:
        run = importlib.import_module(edge.server).run
    except ModuleNotFoundError as exc:
        # The WebSocket server comes with the cpu extra; say so instead of a traceback.
        print(
            f"voxmesh serve {edge.name}: {exc}; install it with pip install 'voxmesh[cpu]'", file=sys.stderr
        )
        return 2
    return int(run(settings))
