"""The ``voxmesh`` command: serve, up, talk, bench, health."""

from __future__ import annotations

import argparse
import importlib
import sys

from pydantic import ValidationError

from voxmesh.edge_cli import EDGES, add_edge_parser
from voxmesh.settings import ServiceSettings
from voxmesh.settings_flags import add_settings_flags, flag_overrides

#: service name → (settings class path, app module exposing build_spec(settings))
SERVICES: dict[str, tuple[str, str]] = {
    "vad": ("voxmesh.services.vad.settings:VadSettings", "voxmesh.services.vad.app"),
    "voxtral": ("voxmesh.services.voxtral.settings:VoxtralSettings", "voxmesh.services.voxtral.app"),
    "orpheus": ("voxmesh.services.orpheus.settings:OrpheusSettings", "voxmesh.services.orpheus.app"),
    "gateway": ("voxmesh.gateway.settings:GatewaySettings", "voxmesh.gateway.app"),
}


def settings_class(service: str) -> type[ServiceSettings]:
    module, _, name = SERVICES[service][0].partition(":")
    cls: type[ServiceSettings] = getattr(importlib.import_module(module), name)
    return cls


def _serve(args: argparse.Namespace) -> int:
    cls = settings_class(args.service)
    try:
        settings = cls(**flag_overrides(args, cls))
    except ValidationError as exc:
        print(f"voxmesh serve {args.service}: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    from voxmesh import server

    app = importlib.import_module(SERVICES[args.service][1])
    server.run(args.service, lambda: app.build_spec(settings), settings)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voxmesh", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run one service")
    serve_sub = serve.add_subparsers(dest="service", required=True)
    for service in SERVICES:
        p = serve_sub.add_parser(service, help=f"run the {service} service")
        add_settings_flags(p, settings_class(service))
        p.set_defaults(func=_serve)
    # The WebSocket edges are not gRPC services: each has its own serve loop.
    for edge in EDGES:
        add_edge_parser(serve_sub, edge)

    for module in ("mesh_cli", "talk_cli", "bench_cli", "health_cli"):
        importlib.import_module(f"voxmesh.{module}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
