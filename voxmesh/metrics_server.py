"""The ``/metrics`` HTTP port every process opens (services and edges alike)."""

from __future__ import annotations

from prometheus_client import start_http_server

from voxmesh.settings import ServiceSettings


def start_metrics(settings: ServiceSettings) -> int | None:
    """Serve prometheus-client's registry on ``settings.metrics_port`` (-1: none); the port bound, or None."""
    if settings.metrics_port < 0:
        return None
    server, _thread = start_http_server(settings.metrics_port, addr=settings.host)
    return int(server.server_port)
