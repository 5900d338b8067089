"""One session's bidi stream to one stage (vad, voxtral or orpheus).

A link opens lazily, reads the stage's EngineInfo first, then hands every
event to the session. When the stage fails the link reports it once and goes
down; the next use re-opens it (with a short backoff so a dead stage is not
dialled per audio chunk), so a session survives a stage restart. The gRPC
channel underneath reconnects on its own with exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from voxmesh import logs
from voxmesh.errors import InvalidArgument
from voxmesh.v1 import common_pb2

log = logging.getLogger(__name__)

#: Requests buffered towards one stage before the stage counts as stuck.
REQUEST_QUEUE_SIZE = 512
_RETRY_MIN_S = 0.25
_RETRY_MAX_S = 2.0
#: A stage's refusal names its field first (``config.language: ...``, see voxmesh.errors).
_STAGE_FIELD = re.compile(r"(config\.\w+): (.*)", re.DOTALL)


@dataclass(frozen=True)
class StageFailure:
    stage: int  # common_pb2.Stage
    code: str
    message: str


class StageRejected(InvalidArgument):
    """The stage refused the stream's config (INVALID_ARGUMENT): the client's fault.

    The stage's config fields carry the client's values under the same names
    (``config.language``, ``config.voice``), so the field the stage named is
    the one the client gets, with the stage that refused it in the message.
    """

    def __init__(self, stage_name: str, details: str) -> None:
        named = _STAGE_FIELD.match(details)
        field, problem = (named[1], named[2]) if named else ("config", details)
        # Stages name themselves in their refusals (``voxtral (engine echo) does not take 'fr'``).
        super().__init__(field, problem if problem.startswith(stage_name) else f"{stage_name}: {problem}")


class StageLink:
    def __init__(
        self,
        stage: int,
        method: Callable[..., Any],
        config: Any,
        on_event: Callable[[Any], Awaitable[None]],
        on_failure: Callable[[StageFailure], Awaitable[None]],
        connect_timeout_s: float,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.stage = stage
        self.name = common_pb2.Stage.Name(stage).removeprefix("STAGE_").lower()
        self._method = method
        self._config = config
        self._on_event = on_event
        self._on_failure = on_failure
        self._connect_timeout_s = connect_timeout_s
        self._metadata = metadata
        self._queue: asyncio.Queue[Any] | None = None
        self._call: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        self._retry_at = 0.0
        #: Streams opened so far; a new one means the stage starts afresh (e.g. vad's sample count).
        self.streams_opened = 0
        self._backoff = _RETRY_MIN_S
        self._lock = asyncio.Lock()
        self.engine = common_pb2.EngineInfo()

    @property
    def up(self) -> bool:
        return self._reader is not None and not self._reader.done() and not self._closing

    async def ensure_open(self) -> bool:
        """Open the stream if it is down; False (after reporting) if the stage is unreachable."""
        if self.up:
            return True
        async with self._lock:
            if self.up:
                return True
            if time.monotonic() < self._retry_at:
                return False
            try:
                await self._open()
            except StageRejected:
                raise
            except (grpc.aio.AioRpcError, TimeoutError, ConnectionError) as exc:
                self._retry_at = time.monotonic() + self._backoff
                self._backoff = min(self._backoff * 2, _RETRY_MAX_S)
                code = exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else "DEADLINE_EXCEEDED"
                details = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else "no answer"
                await self._on_failure(StageFailure(self.stage, code, f"{self.name} unreachable: {details}"))
                return False
            self._backoff = _RETRY_MIN_S
            return True

    async def _open(self) -> None:
        queue: asyncio.Queue[Any] = asyncio.Queue(REQUEST_QUEUE_SIZE)
        queue.put_nowait(self._config)
        call = self._method(_drain(queue), metadata=self._metadata, wait_for_ready=False)
        try:
            first = await asyncio.wait_for(call.read(), self._connect_timeout_s)
        except grpc.aio.AioRpcError as exc:
            call.cancel()
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise StageRejected(self.name, exc.details() or "config rejected") from exc
            raise
        except BaseException:
            call.cancel()
            raise
        if first is grpc.aio.EOF or first.WhichOneof("event") != "engine":
            call.cancel()
            raise ConnectionError(f"{self.name} did not announce its engine")
        self.engine = first.engine
        self.streams_opened += 1
        self._queue, self._call, self._closing = queue, call, False
        self._reader = asyncio.create_task(self._read(call), name=f"{self.name}-reader")
        log.info("stage stream open", extra=logs.fields(stage=self.name, engine=self.engine.engine))

    async def _read(self, call: Any) -> None:
        failure: StageFailure | None = None
        try:
            while True:
                message = await call.read()
                if message is grpc.aio.EOF:
                    if not self._closing:
                        failure = StageFailure(self.stage, "UNAVAILABLE", f"{self.name} closed the stream")
                    break
                await self._on_event(message)
        except grpc.aio.AioRpcError as exc:
            if not self._closing:
                code = exc.code().name
                if exc.code() is grpc.StatusCode.INTERNAL and "Internal error from Core" in (
                    exc.details() or ""
                ):
                    # grpc's asyncio client says this when the peer vanished while
                    # we were writing (a killed stage): it is retryable, not a bug.
                    code = "UNAVAILABLE"
                failure = StageFailure(self.stage, code, f"{self.name}: {exc.details()}")
        finally:
            self._queue = None
        if failure is not None:
            self._retry_at = 0.0
            await self._on_failure(failure)

    def send(self, request: Any) -> bool:
        """Queue a request; False if the link is down (the caller reports per turn)."""
        if not self.up or self._queue is None:
            return False
        try:
            self._queue.put_nowait(request)
        except asyncio.QueueFull:
            log.warning("stage not keeping up; dropping its stream", extra=logs.fields(stage=self.name))
            self._call.cancel()
            return False
        return True

    async def close(self, timeout_s: float = 5.0) -> None:
        """Half-close and wait for the stage to finish its answers; safe to call twice."""
        self._closing = True
        if self._queue is not None:
            self._queue.put_nowait(None)
        if self._reader is not None and not self._reader.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), timeout_s)
            except TimeoutError:
                await self.abort()

    async def abort(self) -> None:
        """Cancel the stream now (client gone); the stage frees the session's work."""
        self._closing = True
        if self._call is not None:
            self._call.cancel()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader


async def _drain(queue: asyncio.Queue[Any]) -> AsyncIterator[Any]:
    """The request stream: items until the ``None`` sentinel half-closes it."""
    while (item := await queue.get()) is not None:
        yield item
