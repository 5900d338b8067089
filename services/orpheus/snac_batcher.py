"""One SNAC decoder shared by every session: a small batching queue.

Sessions hand in windows and await their audio. The worker takes the first
window waiting, then whatever else arrives within ``max_wait_s`` (up to
``max_batch``), and decodes windows of the same length as one batch on one
thread: on a GPU a batch of 16 windows costs about what one does, so
concurrent streams share the decode instead of queueing behind each other.
The wait bound is what one stream may lose to batching: a few milliseconds
against the ~85 ms of audio a frame carries.

First audio goes first: a phrase's first window (nothing of it is playing
yet, and someone is waiting in silence) is taken from the queue ahead of
later windows, whose phrases already have audio buffered ahead of the
listener, and its batch is decoded before theirs. Under load that keeps time
to first audio near one decode instead of a queue's worth of them
(``first_window_priority=False`` serves strictly in arrival order).

The queue is bounded (``queue_size``): when it is full, :meth:`decode`
waits, which slows token consumption for that session rather than letting
memory grow. A window whose caller was cancelled (barge-in) is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from voxmesh.services.orpheus.snac_decoder import DecodeWindow, SnacDecoder

log = logging.getLogger(__name__)

_Item = tuple[DecodeWindow, "asyncio.Future[np.ndarray]"]
#: Queue entries: (priority, arrival number, window, future); 0 = a phrase's first window.
_Entry = tuple[int, int, DecodeWindow, "asyncio.Future[np.ndarray]"]


class SnacBatcher:
    """``await batcher.decode(window)`` → float32 audio of the whole window."""

    def __init__(
        self,
        decoder: SnacDecoder,
        max_batch: int = 16,
        max_wait_s: float = 0.003,
        queue_size: int = 256,
        first_window_priority: bool = True,
    ) -> None:
        self.decoder = decoder
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.first_window_priority = first_window_priority
        self._queue: asyncio.PriorityQueue[_Entry] = asyncio.PriorityQueue(queue_size)
        self._arrivals = itertools.count()
        # One thread: the model is used by one batch at a time, in order.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="snac")
        self._worker: asyncio.Task[None] | None = None
        #: Batches decoded and windows in them (for logs and tests).
        self.batches = 0
        self.windows = 0
        self.largest_batch = 0

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name="snac-batcher")

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        while not self._queue.empty():
            *_, future = self._queue.get_nowait()
            future.cancel()
        self._executor.shutdown(wait=True)

    async def decode(self, window: DecodeWindow) -> np.ndarray:
        if self._worker is None:
            raise RuntimeError("SnacBatcher.start() was not called")
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        priority = 0 if self.first_window_priority and window.emit_from == 0 else 1
        await self._queue.put((priority, next(self._arrivals), window, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch: list[_Entry] = [await self._queue.get()]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    # Take what is already waiting, without waiting longer.
                    while len(batch) < self.max_batch and not self._queue.empty():
                        batch.append(self._queue.get_nowait())
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            try:
                await self._decode_batch(loop, batch)
            finally:
                # Cancelled mid-batch (shutdown): nobody may wait forever.
                for *_, future in batch:
                    if not future.done():
                        future.cancel()

    async def _decode_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Entry]) -> None:
        groups: dict[int, list[_Item]] = defaultdict(list)
        # In priority order, so a group holding a first window is decoded first.
        for _, _, window, future in sorted(batch, key=lambda entry: entry[:2]):
            if not future.done():
                groups[len(window.frames)].append((window, future))
        for items in groups.values():
            try:
                audio = await loop.run_in_executor(
                    self._executor,
                    self.decoder.decode,
                    [w.frames for w, _ in items],
                    [w.start_frame for w, _ in items],
                )
            except Exception as exc:
                log.exception("SNAC decode failed")
                for _, future in items:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches += 1
            self.windows += len(items)
            self.largest_batch = max(self.largest_batch, len(items))
            for row, (_, future) in enumerate(items):
                if not future.done():
                    future.set_result(audio[row])
