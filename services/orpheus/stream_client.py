"""A small async client for one Synthesize stream (tests and ``bench/``).

The gateway talks to orpheus through the generated stubs only; this wrapper
exists so tests and benchmarks read as the protocol: ``text``, ``end_of_text``,
``cancel``, then the events of a turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType

import grpc

from voxmesh.v1 import common_pb2, orpheus_pb2, orpheus_pb2_grpc

_CLOSE = None


def turn_of(event: orpheus_pb2.SynthesizeResponse) -> int:
    """The turn id an event belongs to."""
    turn_id: int = getattr(event, event.WhichOneof("event")).turn_id
    return turn_id


def events_of_turn(
    events: list[orpheus_pb2.SynthesizeResponse], turn_id: int
) -> list[orpheus_pb2.SynthesizeResponse]:
    return [e for e in events if turn_of(e) == turn_id]


class OrpheusStream:
    """``async with OrpheusStream(address, voice="tara") as s:`` sends the config and reads EngineInfo."""

    def __init__(
        self,
        address: str,
        voice: str = "",
        sample_rate_hz: int = 0,
        session_id: str = "test",
        timeout_s: float = 120,
    ) -> None:
        self.address = address
        self.config = orpheus_pb2.SynthesizeConfig(
            session_id=session_id, voice=voice, sample_rate_hz=sample_rate_hz
        )
        self.timeout_s = timeout_s
        self._requests: asyncio.Queue[orpheus_pb2.SynthesizeRequest | None] = asyncio.Queue(256)
        self._channel: grpc.aio.Channel | None = None
        self._call: grpc.aio.StreamStreamCall | None = None
        self.engine = common_pb2.EngineInfo()

    async def __aenter__(self) -> OrpheusStream:
        self._channel = grpc.aio.insecure_channel(self.address)
        stub = orpheus_pb2_grpc.OrpheusStub(self._channel)
        await self._requests.put(orpheus_pb2.SynthesizeRequest(config=self.config))
        self._call = stub.Synthesize(self._request_iter(), timeout=self.timeout_s)
        first = await self.next_event()
        self.engine = first.engine
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._call is not None:
            self._call.cancel()
        if self._channel is not None:
            await self._channel.close()

    async def _request_iter(self) -> AsyncIterator[orpheus_pb2.SynthesizeRequest]:
        while (request := await self._requests.get()) is not _CLOSE:
            assert request is not None
            yield request

    async def text(self, turn_id: int, text: str, trace_context: dict[str, str] | None = None) -> None:
        delta = orpheus_pb2.TextDelta(turn_id=turn_id, text=text, trace_context=trace_context or {})
        await self._requests.put(orpheus_pb2.SynthesizeRequest(text=delta))

    async def end_of_text(self, turn_id: int) -> None:
        await self._requests.put(
            orpheus_pb2.SynthesizeRequest(end_of_text=orpheus_pb2.EndOfText(turn_id=turn_id))
        )

    async def cancel(self, turn_id: int) -> None:
        await self._requests.put(orpheus_pb2.SynthesizeRequest(cancel=common_pb2.CancelTurn(turn_id=turn_id)))

    async def close_requests(self) -> None:
        """Half-close: no more requests (the server finishes turns whose text is complete)."""
        await self._requests.put(_CLOSE)

    async def next_event(self) -> orpheus_pb2.SynthesizeResponse:
        assert self._call is not None
        event = await self._call.read()
        if event is grpc.aio.EOF:
            raise EOFError("the server ended the stream")
        assert isinstance(event, orpheus_pb2.SynthesizeResponse)
        return event

    async def until_done(self, turn_id: int) -> list[orpheus_pb2.SynthesizeResponse]:
        """Every event up to and including ``SynthesisDone`` of ``turn_id`` (a failure raises)."""
        events = await self.until_failed_or_done(turn_id)
        last = events[-1]
        if last.WhichOneof("event") == "failed":
            raise RuntimeError(f"turn {turn_id} failed: {last.failed.code} {last.failed.message}")
        return events

    async def until_failed_or_done(self, turn_id: int) -> list[orpheus_pb2.SynthesizeResponse]:
        events: list[orpheus_pb2.SynthesizeResponse] = []
        while True:
            event = await self.next_event()
            events.append(event)
            if event.WhichOneof("event") in ("done", "failed") and turn_of(event) == turn_id:
                return events
