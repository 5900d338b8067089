"""What one client may take of the gateway, beside the global ``--max-sessions``:
its open sessions, and the messages its sessions send per second together.

Without them one client could hold every slot, or keep the gateway's one
event loop busy reading its floods while everyone else's turns wait. A
client is its bearer token when it sends one (many users behind one NAT keep
their own quotas; with ``--auth-tokens-file`` each app has its own), else its
peer address without the port (a client cannot dodge the quota by opening
more connections).

Past its message budget a client is not refused but read more slowly: the
gateway stops taking its messages until the budget refills, and HTTP/2 flow
control holds the sender back. Its sessions stay up, its floods cost the
gateway no more than the budget, and it has no reason to reconnect (a refusal
would only make it open new sessions).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

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


T = TypeVar("T")

#: A client's message budget holds this many seconds of its rate (a burst).
BURST_S = 1.0


class MessageBudget:
    """A token bucket shared by one client's sessions: ``take`` waits when it is empty."""

    def __init__(self, per_s: float) -> None:
        self.per_s = per_s
        self._burst = max(1.0, per_s * BURST_S)
        self._tokens = self._burst
        self._refilled_at = time.monotonic()

    async def take(self) -> None:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._refilled_at) * self.per_s)
        self._refilled_at = now
        # Spent ahead (negative): the wait is the debt, so concurrent sessions queue fairly.
        self._tokens -= 1.0
        if self._tokens < 0:
            await asyncio.sleep(-self._tokens / self.per_s)


class ClientQuota:
    """Open sessions per client; past ``limit`` a client's new ones get RESOURCE_EXHAUSTED (0: no limit).

    ``messages_per_s`` (0: off) is the budget one client's sessions share; see :meth:`paced`.
    """

    def __init__(self, limit: int, messages_per_s: float = 0.0) -> None:
        self.limit = limit
        self.messages_per_s = messages_per_s
        self._open: Counter[str] = Counter()
        self._budgets: dict[str, MessageBudget] = {}

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
                self._budgets.pop(client, None)

    def paced(self, client: str, requests: AsyncIterator[T]) -> AsyncIterator[T]:
        """``requests`` read no faster than the client's budget (within :meth:`hold`).

        With no budget, ``requests`` itself: no extra step on every message's path.
        """
        return self._paced(client, requests) if self.messages_per_s > 0 else requests

    async def _paced(self, client: str, requests: AsyncIterator[T]) -> AsyncIterator[T]:
        async for request in requests:
            budget = self._budgets.get(client)
            if budget is None:
                budget = self._budgets[client] = MessageBudget(self.messages_per_s)
            await budget.take()
            yield request
