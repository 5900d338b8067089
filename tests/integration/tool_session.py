"""A raw Converse stream for the tool-call tests: send any message, wait for any event.

The SDK hides the protocol's order; these tests need to place a result, a
barge-in or a half-close at an exact point, so they talk protobuf.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import numpy as np

from voxmesh.audio import float_to_pcm16
from voxmesh.v1 import common_pb2, conversation_pb2, conversation_pb2_grpc

Response = conversation_pb2.ConverseResponse

WEATHER = common_pb2.Tool(
    name="weather",
    description="The weather forecast for a city",
    parameters_json=json.dumps(
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    ),
)


def config(tools: tuple[common_pb2.Tool, ...] = (WEATHER,), **fields: Any) -> conversation_pb2.SessionConfig:
    return conversation_pb2.SessionConfig(input_sample_rate_hz=16_000, tools=tools, **fields)


class ToolSession:
    """One Converse stream: ``send`` requests, read ``events`` as they come, ``wait_for`` one."""

    def __init__(self, address: str, session_config: conversation_pb2.SessionConfig) -> None:
        self._channel = grpc.aio.insecure_channel(address)
        self._requests: asyncio.Queue[conversation_pb2.ConverseRequest | None] = asyncio.Queue()
        self._requests.put_nowait(conversation_pb2.ConverseRequest(config=session_config))
        self.events: list[Response] = []
        self.status: grpc.StatusCode | None = None
        self.details = ""
        self._changed = asyncio.Condition()
        self._call = conversation_pb2_grpc.ConversationStub(self._channel).Converse(self._iterate())
        self._reader = asyncio.create_task(self._read())

    async def _iterate(self) -> AsyncIterator[conversation_pb2.ConverseRequest]:
        while (request := await self._requests.get()) is not None:
            yield request

    async def _read(self) -> None:
        try:
            async for event in self._call:
                async with self._changed:
                    self.events.append(event)
                    self._changed.notify_all()
        except grpc.aio.AioRpcError as exc:
            self.status, self.details = exc.code(), exc.details() or ""
        finally:
            async with self._changed:
                if self.status is None:
                    self.status = grpc.StatusCode.OK
                self._changed.notify_all()

    def send(self, **request: Any) -> None:
        self._requests.put_nowait(conversation_pb2.ConverseRequest(**request))

    def result(self, call_id: str, output: str = "", error: str = "") -> None:
        self.send(tool_result=common_pb2.ToolResult(call_id=call_id, output=output, error=error))

    async def speak(self, audio: np.ndarray, realtime: bool = True, chunk_ms: int = 20) -> None:
        """16 kHz audio in 20 ms chunks, at real-time pace (vad's clock is the audio's)."""
        step = 16 * chunk_ms
        for offset in range(0, len(audio), step):
            self.send(audio=conversation_pb2.AudioChunk(pcm=float_to_pcm16(audio[offset : offset + step])))
            if realtime:
                await asyncio.sleep(chunk_ms / 1000)

    def end_input(self) -> None:
        self._requests.put_nowait(None)

    def of(self, kind: str) -> list[Any]:
        return [getattr(e, kind) for e in self.events if e.WhichOneof("event") == kind]

    async def wait_for(
        self, kind: str, where: Callable[[Any], bool] = lambda _: True, timeout_s: float = 60.0
    ) -> Any:
        """The first ``kind`` event (matching ``where``), waiting for it; fails if the stream ends first."""

        def found() -> Any | None:
            return next((e for e in self.of(kind) if where(e)), None)

        try:
            async with asyncio.timeout(timeout_s):
                async with self._changed:
                    while (event := found()) is None:
                        assert self.status is None, (
                            f"stream ended ({self.status}: {self.details}) before a {kind} event; got "
                            f"{self.summary()}"
                        )
                        await self._changed.wait()
                    return event
        except TimeoutError:
            raise AssertionError(f"no {kind} event within {timeout_s:g} s; got {self.summary()}") from None

    def summary(self) -> list[str]:
        """Each event's kind, with the text of transcripts, replies and errors."""
        out = []
        for event in self.events:
            kind = event.WhichOneof("event")
            body = getattr(event, kind)
            text = getattr(body, "text", "") or getattr(body, "delta", "") or getattr(body, "message", "")
            out.append(f"{kind}:{text}" if kind != "audio" else kind)
        return out

    async def finished(self, timeout_s: float = 60.0) -> grpc.StatusCode:
        """Half-close and wait for the stream's end; its status."""
        self.end_input()
        async with asyncio.timeout(timeout_s):
            await asyncio.shield(self._reader)
        assert self.status is not None
        return self.status

    async def close(self) -> None:
        self._call.cancel()
        with contextlib.suppress(BaseException):
            await self._reader
        await self._channel.close()
