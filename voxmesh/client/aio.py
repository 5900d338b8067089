"""The asyncio client: ``async with await AsyncSession.connect(...) as session``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import grpc
import numpy as np

from voxmesh.client import messages
from voxmesh.client.connection import CONNECT_TIMEOUT_S, Connection
from voxmesh.client.errors import from_rpc_error
from voxmesh.client.events import Event, SessionStarted, from_proto
from voxmesh.v1 import conversation_pb2_grpc


class AsyncSession:
    """One conversation with the gateway over a Converse stream."""

    def __init__(self, channel: grpc.aio.Channel, call: Any, queue: asyncio.Queue[Any]) -> None:
        self._channel = channel
        self._call = call
        self._queue = queue
        self._closed_input = False
        #: The gateway's SessionStarted (session id, engines); set by connect().
        self.started: SessionStarted | None = None
        self._replay: list[Event] = []

    @classmethod
    async def connect(
        cls,
        gateway: str = "127.0.0.1:50051",
        *,
        token: str | None = None,
        tls: bool = False,
        root_certificates: bytes | None = None,
        client_cert: bytes | None = None,
        client_key: bytes | None = None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        timeout_s: float | None = None,
        **config: Any,
    ) -> AsyncSession:
        """Open a session. ``config``: sample_rate_hz, output_sample_rate_hz, voice,
        language, system_prompt, turn_mode ("audio"/"stream"/"transcribe"), vad_sensitivity,
        end_of_turn ("silence"/"semantic"), eagerness, silence_duration_ms, prefix_padding_ms.

        ``client_cert``/``client_key`` (PEM): for a gateway that requires client
        certificates. ``connect_timeout_s``: no SessionStarted by then raises
        :class:`Unavailable`. ``timeout_s``: the whole session's deadline (None: none).
        A gateway that stops answering mid-session is noticed by keepalive within ~25 s.
        """
        connection = Connection(gateway, tls, root_certificates, client_cert, client_key, connect_timeout_s)
        channel = connection.aio_channel()
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=256)
        queue.put_nowait(messages.config_request(**config))

        async def requests() -> AsyncIterator[Any]:
            while (item := await queue.get()) is not None:
                yield item

        stub = conversation_pb2_grpc.ConversationStub(channel)
        call = stub.Converse(requests(), metadata=messages.call_metadata(token), timeout=timeout_s)
        session = cls(channel, call, queue)
        # Wait for SessionStarted, so a refused session (bad token, bad config,
        # too many sessions) raises here, before the caller starts writing:
        # grpc's asyncio client can lose the server's status when a call is
        # ended while it is still sending.
        try:
            first = await asyncio.wait_for(session._next(), connection.connect_timeout_s)
        except TimeoutError:
            await session.close()
            raise connection.timed_out() from None
        except BaseException:
            await session.close()
            raise
        if isinstance(first, SessionStarted):
            session.started = first
        if first is not None:
            session._replay.append(first)
        return session

    async def send_audio(self, audio: bytes | np.ndarray) -> None:
        """Send microphone audio (PCM16 bytes, int16 or float samples) at the configured rate."""
        for request in messages.audio_requests(audio):
            await self._queue.put(request)

    async def send_text(self, text: str, instructions: str = "") -> None:
        """A typed turn, answered like a spoken one; ``instructions``: for this reply only,
        in place of the session's system prompt (not kept in the history).
        """
        await self._queue.put(messages.text_request(text, instructions))

    async def request_reply(self, instructions: str = "") -> None:
        """Ask for a reply with no user input (the assistant speaks first: a greeting);
        ``instructions`` as for :meth:`send_text`.
        """
        await self._queue.put(messages.reply_request(instructions))

    async def add_context(self, text: str) -> None:
        """Context the assistant keeps from the next turn on (after the system prompt); no reply."""
        await self._queue.put(messages.context_request(text))

    async def update_instructions(self, system_prompt: str) -> None:
        """Replace the session's system prompt from the next turn on."""
        await self._queue.put(messages.instructions_request(system_prompt))

    async def press_key(self, digits: str) -> None:
        """Keys pressed on a phone keypad (DTMF: 0-9 * # A-D, up to 32): answered with a
        :class:`KeyPressed` event, and taken as the user's turn "The caller pressed 5."
        (interrupting a reply in progress, as :meth:`send_text` does). Anything else ends
        the session with :class:`InvalidRequest` naming key_press.digits.
        """
        await self._queue.put(messages.key_press_request(digits))

    async def report_playback(self, turn_id: int, played_ms: float) -> None:
        """How much of ``turn_id``'s reply audio has been played, in ms: a barge-in keeps the
        reply up to the word playing there. Send it as the audio plays (every 100-200 ms).
        """
        await self._queue.put(messages.playback_request(turn_id, played_ms))

    async def send_tool_result(self, call_id: str, output: Any = "", error: str = "") -> None:
        """Answer a :class:`ToolCall`: its ``output`` (text, or anything JSON can hold), or
        ``error`` when the tool failed. A result for a cancelled or unknown call comes back
        as a :class:`StageError` (INVALID_ARGUMENT) and changes nothing.
        """
        await self._queue.put(messages.tool_result_request(call_id, output, error))

    async def interrupt(self) -> None:
        """Stop the reply in progress."""
        await self._queue.put(messages.control_request(messages.INTERRUPT))

    async def end_input(self) -> None:
        """No more input: the gateway finishes the turn in progress, then ends the stream."""
        if not self._closed_input:
            self._closed_input = True
            await self._queue.put(messages.control_request(messages.END_OF_INPUT))
            await self._queue.put(None)

    async def _next(self) -> Event | None:
        try:
            message = await self._call.read()
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
        return None if message is grpc.aio.EOF else from_proto(message)

    async def events(self) -> AsyncIterator[Event]:
        """Server events (SessionStarted first) until the stream ends; raises a typed VoxmeshClientError on failure."""
        while self._replay:
            yield self._replay.pop(0)
        while (event := await self._next()) is not None:
            yield event

    def __aiter__(self) -> AsyncIterator[Event]:
        return self.events()

    async def close(self) -> None:
        # End the request generator first: cancelling the call while grpc is
        # still awaiting it makes grpc print "cannot reuse already awaited coroutine".
        if not self._closed_input:
            self._closed_input = True
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)
        self._call.cancel()
        await self._channel.close()

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
