"""What one session may send, and how fast: the gateway's per-session input policy.

A hostile (or careless) client can send audio as millions of two-byte chunks:
before this, each became an entry in the audio clock and a message to vad, so
gateway memory grew with the chunk count (58 MiB for 170 000 chunks) and other
sessions' latency with it. Here small chunks are joined before they reach the
clock and vad, so what a session costs follows its audio, not its message
count; a client that still sends absurdly many messages is refused with
RESOURCE_EXHAUSTED. The session's silences are bounded too: the first message
must come within ``first_message_timeout_s`` and later input within
``session_idle_timeout_s`` (while no turn is in progress).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from voxmesh.audio import MAX_CHUNK_BYTES
from voxmesh.errors import EngineOverloaded, VoxmeshError

#: Chunks shorter than this much audio are joined with the next ones. 10 ms is
#: below any real client's frame (WebRTC sends 10-20 ms, the SDK 20 ms), so
#: honest audio passes through untouched and unbuffered.
MIN_CHUNK_S = 0.010
#: The message-rate bucket holds this many seconds of the sustained rate, so a
#: client catching up after a network stall is not refused.
BURST_S = 10.0


class InputTimeout(VoxmeshError):
    """The client sent nothing for too long (DEADLINE_EXCEEDED)."""

    status = "DEADLINE_EXCEEDED"


class InputLimits:
    """Joins small audio chunks and refuses an absurd message rate, for one session."""

    def __init__(self, sample_rate_hz: int, max_messages_per_s: float) -> None:
        # Whole PCM16 samples only, so a joined chunk never splits one.
        self._min_bytes = 2 * max(1, int(sample_rate_hz * MIN_CHUNK_S))
        self._pending = bytearray()
        self._rate = max_messages_per_s
        self._burst = max(1.0, max_messages_per_s * BURST_S)
        self._tokens = self._burst
        self._refilled_at = time.monotonic()

    def admit(self) -> None:
        """One client message arrived; raise RESOURCE_EXHAUSTED past the sustained rate."""
        if self._rate <= 0:
            return
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._refilled_at) * self._rate)
        self._refilled_at = now
        if self._tokens < 1.0:
            raise EngineOverloaded(
                f"input: more than {self._rate:g} messages/s (max_input_messages_per_s); send larger audio chunks"
            )
        self._tokens -= 1.0

    def audio(self, pcm: bytes) -> list[bytes]:
        """The chunks to forward now for ``pcm``: none while too little audio is pending.

        Malformed chunks (odd length, oversize) go on untouched, so the
        decoder refuses them naming ``audio.pcm`` as before.
        """
        if len(pcm) % 2 or len(pcm) > MAX_CHUNK_BYTES:
            return [*self.flush(), pcm]
        if not self._pending and len(pcm) >= self._min_bytes:
            return [pcm]
        if len(self._pending) + len(pcm) > MAX_CHUNK_BYTES:
            return [*self.flush(), pcm]
        self._pending += pcm
        if len(self._pending) < self._min_bytes:
            return []
        return self.flush()

    def flush(self) -> list[bytes]:
        """Whatever audio is pending (end of input)."""
        if not self._pending:
            return []
        out = bytes(self._pending)
        self._pending.clear()
        return [out]


async def first_request(requests: AsyncIterator[Any], timeout_s: float) -> Any:
    """The stream's first message (None if it ended), or DEADLINE_EXCEEDED after ``timeout_s``.

    A stream that opens and says nothing holds no session slot, and is closed.
    """
    try:
        return await asyncio.wait_for(anext(aiter(requests), None), timeout_s)
    except TimeoutError:
        raise InputTimeout(f"config: no SessionConfig within {timeout_s:g} s of opening the stream") from None


async def idle_limited(
    requests: AsyncIterator[Any], idle_s: float, busy: Callable[[], bool]
) -> AsyncIterator[Any]:
    """``requests``, ended with DEADLINE_EXCEEDED after ``idle_s`` with no input and no turn in progress.

    A client listening to a long reply sends nothing and is not idle: the
    clock only runs out while ``busy()`` is False.
    """
    iterator = aiter(requests)
    while True:
        pending: asyncio.Future[Any] = asyncio.ensure_future(anext(iterator, _END))
        try:
            while not pending.done():
                done, _ = await asyncio.wait({pending}, timeout=idle_s)
                if not done and not busy():
                    raise InputTimeout(f"session idle: no input for {idle_s:g} s (session_idle_timeout_s)")
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending
        item = pending.result()
        if item is _END:
            return
        yield item


_END = object()
