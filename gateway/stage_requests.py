"""The requests one session sends down one stage stream: bounded, and able to tell a stuck stage.

gRPC pulls the next request only once the previous one was written, and a
write waits while the stage's receive window is full: a stage that stopped
reading (hung, frozen, overloaded) leaves requests waiting here. Its stream
then counts as stuck, either when the queue is full or when the oldest waiting
request has waited ``STALL_S``, and the link drops it and tells the session
(an ``Error`` naming the stage) instead of buffering without end or, as
before, saying nothing (a vad that never read 3 000 chunks gave no event).
Nothing here raises ``QueueFull``: a full queue is an answer, not an error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

#: A request waiting this long means the stage stopped reading: a healthy stage
#: takes each one within milliseconds, and 5 s is longer than any GC pause.
STALL_S = 5.0


class StageRequests:
    def __init__(self, size: int, stall_s: float = STALL_S) -> None:
        # One slot more than ``size`` so the closing sentinel always fits.
        self._queue: asyncio.Queue[Any] = asyncio.Queue(size + 1)
        self._size = size
        self._stall_s = stall_s
        #: Since when the request at the head has been waiting (None: nothing waits).
        self._waiting_since: float | None = None
        self._closed = False

    def put(self, request: Any) -> bool:
        """Queue a request; False if the stage is stuck (queue full or head waited too long)."""
        if self._queue.qsize() >= self._size or self.stalled():
            return False
        if self._waiting_since is None:
            self._waiting_since = time.monotonic()
        self._queue.put_nowait(request)
        return True

    def stalled(self) -> bool:
        return self._waiting_since is not None and time.monotonic() - self._waiting_since > self._stall_s

    def close(self) -> None:
        """Half-close the stream after what is queued (the sentinel has its own slot)."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)

    async def stream(self) -> AsyncIterator[Any]:
        """The request iterator handed to gRPC: items until the ``None`` sentinel."""
        while (item := await self._queue.get()) is not None:
            self._waiting_since = time.monotonic() if not self._queue.empty() else None
            yield item
