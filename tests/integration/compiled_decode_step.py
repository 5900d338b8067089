"""A stand-in for transformers' compiled decode step on CUDA, for tests that run on CPU.

With a static cache, transformers compiles the decode step with
``mode="reduce-overhead"`` only on CUDA; on CPU the same ``generate`` calls
run the step eagerly, on the same threads, with the same cache. What CUDA
adds is checked here, around the model's real forward:

- CUDA-graph trees are per thread (pytorch/pytorch#123177): a step on any
  thread but the one that recorded the graph raises, as ``_is_key_in_tls``
  asserts on CUDA;
- a step whose shapes, or cache tensors, the compiled graph has not seen is
  a recompile (or a graph re-recorded): counted, and after :meth:`serving`
  it is one inside a live turn.

Only decode steps over a static cache are compiled; a decode step over any
other cache is counted apart (a regression to a dynamic cache shows there).
"""

from __future__ import annotations

import functools
import threading
from typing import Any


class CompiledDecodeStep:
    """Wraps ``model.forward``; see the module docstring."""

    def __init__(self, model: Any) -> None:
        self.graph_thread: int | None = None
        #: Threads that tried to run a compiled step (one is right).
        self.threads: set[str] = set()
        #: Shape + cache address of every graph compiled so far.
        self.compiled: set[tuple[Any, ...]] = set()
        self.steps_before_serving = 0
        self.live_steps = 0
        self.live_recompiles: list[tuple[Any, ...]] = []
        self.uncompiled_decode_steps = 0
        self._serving = False
        self._forward = model.forward

        # wraps: generate validates its kwargs against forward's signature.
        @functools.wraps(self._forward)
        def forward(*args: Any, **kwargs: Any) -> Any:
            return self._step(*args, **kwargs)

        model.forward = forward

    def serving(self) -> None:
        """The engine's start() returned: the stage reports SERVING from here on."""
        self._serving = True

    def _step(self, *args: Any, **kwargs: Any) -> Any:
        input_ids = kwargs.get("input_ids")
        cache = kwargs.get("past_key_values")
        if input_ids is not None and input_ids.shape[1] == 1 and cache is not None:
            if type(cache).__name__ != "StaticCache":
                self.uncompiled_decode_steps += 1
            else:
                self._check(input_ids, cache, kwargs.get("attention_mask"))
        return self._forward(*args, **kwargs)

    def _check(self, input_ids: Any, cache: Any, mask: Any) -> None:
        thread = threading.current_thread()
        self.threads.add(thread.name)
        if self.graph_thread is None:
            self.graph_thread = thread.ident
        elif thread.ident != self.graph_thread:
            raise AssertionError(
                f"CUDA graph recorded on another thread replayed on {thread.name} (_is_key_in_tls)"
            )
        keys = cache.layers[0].keys
        # The mask comes in sized for the cache (1, 1, 1, cache length), so it
        # is part of the shape; the cache tensors' address is what graphs replay.
        graph = (
            tuple(input_ids.shape),
            tuple(getattr(mask, "shape", ())),
            tuple(keys.shape),
            keys.data_ptr(),
        )
        if self._serving:
            self.live_steps += 1
            if graph not in self.compiled:
                self.live_recompiles.append(graph)
        else:
            self.steps_before_serving += 1
        self.compiled.add(graph)
