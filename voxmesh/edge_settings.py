"""The settings every WebSocket edge has: where the gateway is and how to reach it.

Apart from voxmesh.edge_server (which needs the cpu extra's websockets), so the
command line can list the edges' flags on a base install.
"""

from __future__ import annotations

from pydantic import Field

from voxmesh.settings import ServiceSettings


class EdgeSettings(ServiceSettings):
    """Settings every edge has: where the gateway is and how to reach it."""

    gateway: str = Field("127.0.0.1:50051", description="gateway host:port (a client of its Converse stream)")
    gateway_tls: bool = Field(False, description="Connect to the gateway over TLS")
    gateway_ca: str | None = Field(None, description="PEM CA bundle for the gateway's certificate")
