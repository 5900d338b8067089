"""Where a transformers model's ``generate`` calls run: the thread layout and the static KV cache.

With a static cache on CUDA, transformers compiles the decode step with
``mode="reduce-overhead"``: CUDA-graph trees, whose state is kept per thread
(pytorch/pytorch#123177, fixed only after torch 2.11, the GPU host's torch).
A graph recorded on one thread asserts (``_is_key_in_tls``) when replayed on
another, and a thread pool hands calls to whichever thread is free. So with
a static cache every call runs on *one* thread: the compiled step, its
graphs and its cache only ever see that thread. That costs no concurrency:
the compiled step shares one cache, so calls took turns on the model anyway
(a lock did that before). The other fix, a compile mode without graph trees,
would keep the thread pool but give up the graphs, which are most of what
the static cache buys at batch size 1 (a 3B decode step is a few hundred
small kernels, launch-bound without graphs).

The cache is sized once, for the longest request the engine can make (its
context), and reused by every call: a cache sized per call would change the
compiled step's shapes (a recompile inside a live turn) and move the
tensors its graphs were recorded on. :meth:`GenerateWorker.warm_up` runs
before the service reports SERVING, so the compile and the graph recording
happen there, not in a user's first turn.

Without a static cache nothing is compiled: calls run concurrently, one
thread per session, each with its own dynamic cache.

torch and transformers are imported inside the methods, as in
:mod:`voxmesh.torch_generation`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from voxmesh import logs

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: New tokens of a warm-up call: the first decode step compiles, the next
#: ones warm up, record and replay the CUDA graph; a few more for margin.
WARM_UP_TOKENS = 8


class GenerateWorker:
    """The thread(s) one model's ``generate`` calls run on, and its static cache."""

    def __init__(self, static_cache: bool, max_sessions: int, name: str) -> None:
        self.static_cache = static_cache
        self.threads = 1 if static_cache else max_sessions
        self.executor = ThreadPoolExecutor(self.threads, thread_name_prefix=name)
        #: Tokens the static cache holds (prompt + new tokens of any one call); 0 until sized.
        self.cache_tokens = 0
        self._cache: Any = None

    def size_cache(self, model: Any, tokens: int) -> None:
        """Allocate (lazily, on first use) the one static cache every call reuses."""
        if not self.static_cache:
            return
        from transformers import StaticCache

        self._cache = StaticCache(config=model.config.get_text_config(decoder=True), max_cache_len=tokens)
        self.cache_tokens = tokens

    def cache_args(self) -> dict[str, Any]:
        """``generate``'s cache arguments for one call; on the worker thread, right before it."""
        if not self.static_cache:
            return {}
        assert self._cache is not None, "size_cache() was not called"
        # Zeroed in place: same tensors, same shapes, so the compiled step and
        # its graphs are reused as they are.
        self._cache.reset()
        return {"past_key_values": self._cache}

    def submit(self, call: Callable[[], _T]) -> asyncio.Future[_T]:
        return asyncio.get_running_loop().run_in_executor(self.executor, call)

    async def warm_up(self, calls: list[Callable[[], None]], model_name: str) -> None:
        """Run the engine's warm-up calls on the worker thread (the one that will replay their graphs)."""
        if not self.static_cache:
            return
        started = time.perf_counter()
        for call in calls:
            await self.submit(call)
        log.info(
            "compiled generation warmed up",
            extra=logs.fields(
                model=model_name,
                calls=len(calls),
                cache_tokens=self.cache_tokens,
                seconds=round(time.perf_counter() - started, 3),
            ),
        )

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
