"""One session's bidi stream to one stage (vad, voxtral or orpheus).

A link opens lazily on a replica the stage's :class:`StagePool` picks,
reads the stage's EngineInfo first, then hands every event to the session.
A replica that refuses the stream (full, draining, down) is skipped and the
next one tried before the session hears anything; if every one is full the
open fails with :class:`StageFull`. When the stage fails mid-stream the link
reports it once and goes down; the next use re-opens it, on the same replica
if it still has room, else on another (with a short backoff so a dead stage
is not dialled per audio chunk), so a session survives a replica's death.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from voxmesh import logs
from voxmesh.errors import EngineOverloaded, EngineUnavailable, InvalidArgument, VoxmeshError
from voxmesh.gateway.placement import Replica, StagePool
from voxmesh.gateway.stage_requests import STALL_S, StageRequests
from voxmesh.idle_drain import DRAINED
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
    #: The replica is draining and closed the stream between turns (voxmesh.idle_drain):
    #: nothing was lost, the next use opens elsewhere.
    drained: bool = False
    #: False when the stage refused the gateway's own credentials: no retry by the client helps.
    retryable: bool = True


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


class StageFull(EngineOverloaded):
    """Every replica of the stage refused the stream for want of room."""

    def __init__(self, stage_name: str, tried: int) -> None:
        super().__init__(
            f"{stage_name}: no replica has room for another session ({tried} tried); retry later"
        )


class StageUnreachable(EngineUnavailable):
    """A stage the new session needs is down: UNAVAILABLE before SessionStarted; retry later."""

    def __init__(self, stage_name: str, cause: str) -> None:
        super().__init__(f"{stage_name} is unavailable: {cause}; retry later")


class StageMisconfigured(VoxmeshError):
    """The gateway's own credentials for a stage are wrong (token, TLS): permanent until fixed.

    FAILED_PRECONDITION, not UNAUTHENTICATED: the SDKs and the Realtime edge
    read UNAUTHENTICATED as the *client's* token being wrong ("invalid_api_key").
    """

    status = "FAILED_PRECONDITION"

    def __init__(self, stage_name: str, cause: str) -> None:
        super().__init__(f"the gateway cannot use stage {stage_name}: {cause}")


#: Status codes that send the stream on to the stage's next replica.
_SKIP = (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class StageLink:
    def __init__(
        self,
        stage: int,
        pool: StagePool,
        config: Any | Callable[[], Any],
        on_event: Callable[[Any], Awaitable[None]],
        on_failure: Callable[[StageFailure], Awaitable[None]],
        connect_timeout_s: float,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.stage = stage
        self.name = common_pb2.Stage.Name(stage).removeprefix("STAGE_").lower()
        self._pool = pool
        #: The first request of every stream, or what makes it when the stream opens.
        self._config = config
        #: The replica the stream is (or was last) open on.
        self.replica: Replica | None = None
        self._on_event = on_event
        self._on_failure = on_failure
        self._connect_timeout_s = connect_timeout_s
        self._metadata = metadata
        self._queue: StageRequests | None = None
        #: This link dropped the stream itself (the stage stopped taking requests).
        self._dropped = False
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

    async def ensure_open(self, admission: bool = False) -> bool:
        """Open the stream if it is down; False (after reporting) if the stage is unreachable.

        ``admission``: a session being admitted; a stage with no room raises
        :class:`StageFull` (the client gets RESOURCE_EXHAUSTED before
        SessionStarted), one that cannot be reached :class:`StageUnreachable`,
        one that refuses the gateway's token :class:`StageMisconfigured`: every
        SessionStarted names the three engines. Later, each is one turn's error.
        """
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
            except StageFull as exc:
                if admission:
                    raise
                self._retry_at = time.monotonic() + _RETRY_MIN_S
                await self._on_failure(StageFailure(self.stage, exc.status, str(exc)))
                return False
            except (grpc.aio.AioRpcError, TimeoutError, ConnectionError) as exc:
                self._retry_at = time.monotonic() + self._backoff
                self._backoff = min(self._backoff * 2, _RETRY_MAX_S)
                if isinstance(exc, grpc.aio.AioRpcError):
                    code, details = exc.code().name, exc.details()
                elif isinstance(exc, TimeoutError):
                    code, details = "DEADLINE_EXCEEDED", "no answer"
                else:
                    code, details = "UNAVAILABLE", str(exc)
                refused = code == "UNAUTHENTICATED"
                if admission:
                    if refused:
                        raise StageMisconfigured(
                            self.name, f"it refused the gateway's token: {details}"
                        ) from exc
                    raise StageUnreachable(self.name, f"{code}: {details}") from exc
                message = (
                    f"{self.name} refused the gateway's token" if refused else f"{self.name} unreachable"
                )
                await self._on_failure(
                    StageFailure(self.stage, code, f"{message}: {details}", retryable=not refused)
                )
                return False
            self._backoff = _RETRY_MIN_S
            return True

    async def _open(self) -> None:
        """Open on the first replica that admits the stream."""
        replicas = await self._pool.candidates(prefer=self.replica)
        if not replicas:
            raise ConnectionError(f"no replica of {self.name} at {self._pool.target}")
        last: BaseException | None = None
        full = 0
        for replica in replicas:
            self._pool.begin(replica)
            try:
                await self._open_on(replica)
            except grpc.aio.AioRpcError as exc:
                self._pool.refused(replica, exc.code().name)
                if exc.code() not in _SKIP:
                    raise
                full += exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
                last = exc
                log.info(
                    "replica refused the stream; trying the next",
                    extra=logs.fields(stage=self.name, replica=replica.target, code=exc.code().name),
                )
                continue
            except (TimeoutError, ConnectionError) as exc:
                self._pool.refused(replica, "UNAVAILABLE")
                last = exc
                continue
            except asyncio.CancelledError:
                self._pool.abandoned(replica)  # the session went away; the replica did nothing wrong
                raise
            except BaseException:
                self._pool.refused(replica, "INVALID_ARGUMENT")
                raise
            return
        if full:
            # Some replica is up but full, the rest are down or full: no room anywhere.
            raise StageFull(self.name, len(replicas))
        assert last is not None
        raise last

    async def _open_on(self, replica: Replica) -> None:
        queue = StageRequests(REQUEST_QUEUE_SIZE)
        queue.put(self._config() if callable(self._config) else self._config)
        call = replica.method(queue.stream(), metadata=self._metadata, wait_for_ready=False)
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
        self._pool.opened(replica, first.engine)
        self.replica = replica
        self.streams_opened += 1
        self._queue, self._call, self._closing, self._dropped = queue, call, False, False
        self._reader = asyncio.create_task(self._read(call, replica), name=f"{self.name}-reader")
        log.info(
            "stage stream open",
            extra=logs.fields(stage=self.name, engine=self.engine.engine, replica=replica.target),
        )

    async def _read(self, call: Any, replica: Replica) -> None:
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
                drained = exc.code() is grpc.StatusCode.UNAVAILABLE and exc.details() == DRAINED
                failure = StageFailure(self.stage, code, f"{self.name}: {exc.details()}", drained)
        except asyncio.CancelledError:
            if not self._dropped or self._closing:
                raise
            # send() cancelled the call (grpc then raises CancelledError, not an
            # AioRpcError): the session must still hear that the stage is gone.
            failure = StageFailure(
                self.stage,
                "UNAVAILABLE",
                f"{self.name} stopped taking requests ({REQUEST_QUEUE_SIZE} waiting, or one for {STALL_S:g} s):"
                " stream dropped",
            )
        finally:
            self._queue = None
            self._pool.closed(replica)
        if failure is not None:
            self._retry_at = 0.0
            await self._on_failure(failure)

    def send(self, request: Any) -> bool:
        """Queue a request; False if the link is down (the caller reports per turn)."""
        if not self.up or self._queue is None:
            return False
        if not self._queue.put(request):
            self._drop()
            return False
        return True

    def drop_if_stuck(self) -> None:
        """Called every 0.25 s: a stream whose requests stopped moving is dropped, and reported."""
        if self.up and self._queue is not None and self._queue.stalled():
            self._drop()

    def _drop(self) -> None:
        log.warning("stage stopped taking requests; dropping its stream", extra=logs.fields(stage=self.name))
        self._dropped = True
        self._call.cancel()

    async def close(self, timeout_s: float = 5.0) -> None:
        """Half-close and wait for the stage to finish its answers; safe to call twice."""
        self._closing = True
        if self._queue is not None:
            self._queue.close()
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
