"""Build a model engine on its own thread, so the service's event loop stays free while it loads.

vLLM's ``AsyncLLM.from_engine_args`` is synchronous: it starts the engine
core process and polls for its handshake until the weights are loaded, the
memory profiled and the KV cache allocated (minutes for real weights). Run
on the service's event loop, that poll froze the loop: health checks timed
out instead of answering NOT_SERVING, and SIGTERM waited for the whole
load. :func:`load_off_loop` runs such a build on a daemon thread and awaits
it; the loop answers health checks and signals meanwhile.

Cancelling the wait (SIGTERM during start-up) cannot stop the build itself,
so the thread is *abandoned*: whatever it builds later goes to ``unload``
(``AsyncLLM.shutdown``), on the thread, never to the engine. The thread is a
daemon, and not ``asyncio.to_thread``'s pool, which ``asyncio.run`` joins at
exit: a process told to stop during a load exits without waiting for it
(vLLM's engine-core children are daemonic processes: multiprocessing
terminates them at exit).

Building an ``AsyncLLM`` off the loop is safe: with no running loop it defers
its output handler task and its ZeroMQ sockets bind to the loop on first use
(``generate`` on the service's loop).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from voxmesh import logs

log = logging.getLogger(__name__)

T = TypeVar("T")


async def load_off_loop(what: str, load: Callable[[], T], unload: Callable[[T], None]) -> T:
    """``load()`` on a daemon thread; its result, or ``unload(result)`` there if this wait was cancelled."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[T] = loop.create_future()
    lock = threading.Lock()
    abandoned = False

    def discard(value: T) -> None:
        log.info("start-up was cancelled: unloading what finished loading", extra=logs.fields(engine=what))
        try:
            unload(value)
        except Exception:
            log.exception("unloading an abandoned %s failed", what)

    def deliver(value: T | None, error: BaseException | None) -> None:
        # On the loop. The wait may have been cancelled after the thread checked (see run()).
        if result.done():
            if error is None:
                threading.Thread(target=discard, args=(value,), name=f"unload-{what}", daemon=True).start()
        elif error is not None:
            result.set_exception(error)
        else:
            result.set_result(value)  # type: ignore[arg-type]

    def run() -> None:
        value: T | None = None
        error: BaseException | None = None
        try:
            value = load()
        except BaseException as exc:  # handed to the waiter, which re-raises it
            error = exc
        with lock:
            if not abandoned:
                try:
                    loop.call_soon_threadsafe(deliver, value, error)
                    return
                except RuntimeError:  # the loop is closed: the process is exiting
                    pass
        if error is None:
            discard(value)  # type: ignore[arg-type]

    threading.Thread(target=run, name=f"load-{what}", daemon=True).start()
    try:
        return await result
    except asyncio.CancelledError:
        with lock:
            abandoned = True
        raise


async def start_async_llm(what: str, engine_args: Any) -> Any:
    """VLLM's ``AsyncLLM`` for ``engine_args``, built off the event loop (see :func:`load_off_loop`)."""
    from vllm.v1.engine.async_llm import AsyncLLM

    def shutdown(llm: Any) -> None:
        llm.shutdown()

    return await load_off_loop(what, lambda: AsyncLLM.from_engine_args(engine_args), shutdown)
