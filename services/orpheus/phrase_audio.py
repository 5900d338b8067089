"""A phrase synthesised in the background, so that the next phrase is ready when this one ends.

A turn's phrases used to be generated strictly one after another: the next
started only once the previous one's last chunk was out, and its first
chunk then needed a prefill and the lookahead frames. Near 1.0× real time
(many sessions on one card) the listener's buffer at a phrase end is about
one frame, so every phrase boundary was ~100 ms of silence. The session
starts the next phrase while the current one plays (see
:meth:`SynthesisSession._speak_turn`), and :class:`PhraseAudio` keeps what
it makes until the session gets to it.

Its chunks wait in an unbounded queue, bounded in fact by the phrase's
token cap (one chunk per decoded window, at most ``max_phrase_tokens / 7``
frames); at most two phrases of a turn are under way at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import numpy as np


class _End:
    """Queue marker: the engine has produced the whole phrase."""


class PhraseAudio:
    """The chunks of one phrase, produced by a task started at construction, read once."""

    def __init__(self, text: str, index: int, chunks: AsyncIterator[np.ndarray], name: str) -> None:
        self.text = text
        #: The phrase's place in its turn (0: the first).
        self.index = index
        self.started_at = time.perf_counter()
        #: When the engine finished the phrase (None until then).
        self.finished_at: float | None = None
        self.native_samples = 0
        self._queue: asyncio.Queue[np.ndarray | BaseException | _End] = asyncio.Queue()
        self._task = asyncio.create_task(self._produce(chunks), name=name)

    async def _produce(self, chunks: AsyncIterator[np.ndarray]) -> None:
        try:
            # aclosing: a cancel closes the engine's generator now, which stops
            # its model request (the engine contract), not whenever GC runs.
            async with contextlib.aclosing(chunks) as audio:  # type: ignore[type-var]
                async for chunk in audio:
                    self.native_samples += len(chunk)
                    self._queue.put_nowait(chunk)
            self.finished_at = time.perf_counter()
            self._queue.put_nowait(_End())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._queue.put_nowait(exc)

    async def chunks(self) -> AsyncIterator[np.ndarray]:
        """The phrase's chunks as they come; raises what the engine raised."""
        while not isinstance(item := await self._queue.get(), _End):
            if isinstance(item, BaseException):
                raise item
            yield item

    async def close(self) -> None:
        """Stop the engine's work on this phrase (if any is left); safe to call twice."""
        if not self._task.done():
            self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
