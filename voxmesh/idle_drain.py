"""A stage stream that ends itself once its process drains and it holds no turn.

On SIGTERM a stage refuses new streams but lets the open ones run for the
grace period. A session between turns would keep its stream to the stopping
replica until the process exits, and then see the broken stream as an
``Error``. Ending such an idle stream at once, with UNAVAILABLE and
:data:`DRAINED`, lets the gateway open the session's next turn on another
replica without telling the client anything, and lets the process exit as
soon as its last live turn is done.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, TypeVar

from voxmesh.errors import EngineUnavailable

T = TypeVar("T")

#: The stream's closing message: the gateway reads it as "moved, not failed".
DRAINED = "draining: stream closed between turns; open the next turn on another replica"
#: While draining, how often an open stream checks whether it became idle.
_POLL_S = 0.1


async def close_when_idle(
    responses: AsyncGenerator[T, None], drained: asyncio.Event, idle: Callable[[], bool]
) -> AsyncIterator[T]:
    """Yield ``responses``; after ``drained`` is set, end with UNAVAILABLE once ``idle()``.

    ``idle()`` must be true only when no turn is open and nothing is waiting to
    be sent. It has to hold on two checks a poll apart, so a request read just
    before the first check gets to open its turn.
    """
    pending: asyncio.Future[T] | None = None
    idle_once = False
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(responses))
            if drained.is_set():
                await asyncio.wait({pending}, timeout=_POLL_S)
                if not pending.done():
                    if idle() and idle_once:
                        raise EngineUnavailable(DRAINED)
                    idle_once = idle()
                    continue
            else:
                waiter = asyncio.ensure_future(drained.wait())
                futures: set[asyncio.Future[Any]] = {pending, waiter}
                await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if not pending.done():
                    continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            pending, idle_once = None, False
            yield item
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        await responses.aclose()
