"""Sessions per client, beside the gateway's global ``--max-sessions``.

Without it one client could hold every slot and lock everyone else out. A
client is its bearer token when it sends one (many users behind one NAT keep
their own quotas), else its peer address without the port (a client cannot
dodge the quota by opening more connections).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import Counter
from collections.abc import Iterator

import grpc

from voxmesh.errors import EngineOverloaded


def client_of(context: grpc.aio.ServicerContext) -> str:
    """Who opened the stream: a digest of its token (never the token itself), else its IP."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            given = value.encode() if isinstance(value, str) else value
            return "token:" + hashlib.sha256(given).hexdigest()[:16]
    peer = context.peer() or "unknown"
    # ipv4:127.0.0.1:53412, ipv6:[::1]:53412, unix:/path: the host part identifies the client.
    host = peer.rsplit(":", 1)[0] if peer.startswith(("ipv4:", "ipv6:")) else peer
    return "peer:" + host


class ClientQuota:
    """Open sessions per client; past ``limit`` a client's new ones get RESOURCE_EXHAUSTED (0: no limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[str] = Counter()

    @contextlib.contextmanager
    def hold(self, client: str) -> Iterator[None]:
        if self.limit > 0 and self._open[client] >= self.limit:
            raise EngineOverloaded(
                f"max_sessions_per_client reached ({self.limit} open from this client); close one or retry later"
            )
        self._open[client] += 1
        try:
            yield
        finally:
            self._open[client] -= 1
            if self._open[client] <= 0:
                del self._open[client]
