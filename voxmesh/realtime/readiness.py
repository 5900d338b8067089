"""Wait for an edge child (``voxmesh serve realtime`` or ``telephony``) to serve: HTTP /healthz, not gRPC health."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from voxmesh.processes import ServiceDied, ServiceProcess


def edge_ready(address: str, timeout_s: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/healthz", timeout=timeout_s) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_edge_serving(edge: ServiceProcess, timeout_s: float = 60.0) -> None:
    """Block until the edge answers /healthz; raise with its log tail if it dies first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if reason := edge.exit_reason():
            raise ServiceDied(edge, reason)
        if edge_ready(edge.address):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{edge.name} edge not serving after {timeout_s:.0f} s:\n{edge.log_tail()}")
