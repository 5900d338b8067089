"""What a container's main process serves, and where to ask it: ``voxmesh health --container``.

One image runs any service (``docker run voxmesh:cpu vad``, ``… realtime``), so
its HEALTHCHECK cannot name one port: it reads PID 1's command line, parses it
with voxmesh's own parser, and builds that service's settings the way the
service did (its flags, then its ``VOXMESH_*`` environment, then the defaults).
gRPC services are asked the standard health service; the WebSocket edges
(realtime, telephony) their HTTP ``/healthz``. ``voxmesh up`` (the all-in-one
image) is asked at its gateway.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from voxmesh.edge_cli import EDGES
from voxmesh.mesh import DEFAULT_PORTS
from voxmesh.settings_flags import flag_overrides

#: A service listening on every address is asked on the loopback one.
_ANY = ("0.0.0.0", "::", "[::]", "")


@dataclass(frozen=True)
class HealthTarget:
    #: "grpc" (standard health service) or "http" (GET /healthz answers 200).
    protocol: str
    address: str
    #: What runs there, for the message.
    service: str


def command_line(pid: int = 1) -> list[str]:
    """The argv of process ``pid`` (Linux /proc)."""
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def target_of(argv: list[str]) -> HealthTarget:
    """Where the process started as ``argv`` serves (raises ValueError when it is no voxmesh server)."""
    from voxmesh.cli import build_parser, settings_class

    override = os.environ.get("VOXMESH_HEALTH_PORT")
    for command in ("serve", "up"):
        if command in argv:
            args = build_parser().parse_args(argv[argv.index(command) :])
            break
    else:
        raise ValueError(f"not a voxmesh server: {' '.join(argv)!r}")
    if args.command == "up":
        # The all-in-one: its gateway (moved with --base-port).
        port = int(override or args.base_port or DEFAULT_PORTS["gateway"])
        return HealthTarget("grpc", f"127.0.0.1:{port}", "gateway")
    edges = {edge.name: edge for edge in EDGES}
    cls = edges[args.service].settings if args.service in edges else settings_class(args.service)
    settings = cls(**flag_overrides(args, cls))
    host = "127.0.0.1" if settings.host in _ANY else settings.host
    port = int(override or settings.port)
    return HealthTarget("http" if args.service in edges else "grpc", f"{host}:{port}", args.service)
