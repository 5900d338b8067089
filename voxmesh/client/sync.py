"""The blocking client: ``with Session.connect(...) as session``.

Built on gRPC's synchronous API: requests flow from a thread-safe queue, so
one thread can push audio while another iterates events.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import grpc
import numpy as np

from voxmesh.client import messages
from voxmesh.client.connection import CONNECT_TIMEOUT_S, Connection
from voxmesh.client.errors import from_rpc_error
from voxmesh.client.events import Event, SessionStarted, from_proto
from voxmesh.v1 import conversation_pb2_grpc


class Session:
    """One conversation with the gateway (blocking API)."""

    def __init__(self, channel: grpc.Channel, responses: Any, requests: queue.Queue[Any]) -> None:
        self._channel = channel
        self._responses = responses
        self._requests = requests
        self._closed_input = False
        #: The gateway's SessionStarted (session id, engines); set by connect().
        self.started: SessionStarted | None = None
        self._replay: list[Event] = []

    @classmethod
    def connect(
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
    ) -> Session:
        """Open a session; the arguments as for :meth:`AsyncSession.connect`."""
        connection = Connection(gateway, tls, root_certificates, client_cert, client_key, connect_timeout_s)
        channel = connection.channel()
        try:
            # The blocking API cannot bound the first read; a channel that is not
            # up within the deadline (gateway frozen or down) is the same answer.
            grpc.channel_ready_future(channel).result(timeout=connection.connect_timeout_s)
        except grpc.FutureTimeoutError:
            channel.close()
            raise connection.timed_out() from None
        requests: queue.Queue[Any] = queue.Queue(maxsize=256)
        requests.put(messages.config_request(**config))
        stub = conversation_pb2_grpc.ConversationStub(channel)
        responses = stub.Converse(
            iter(requests.get, None), metadata=messages.call_metadata(token), timeout=timeout_s
        )
        session = cls(channel, responses, requests)
        # Wait for SessionStarted so a refused session raises here (see AsyncSession.connect).
        try:
            first = next(session._stream(), None)
        except BaseException:
            session.close()
            raise
        if isinstance(first, SessionStarted):
            session.started = first
        if first is not None:
            session._replay.append(first)
        return session

    def send_audio(self, audio: bytes | np.ndarray) -> None:
        for request in messages.audio_requests(audio):
            self._requests.put(request)

    def send_text(self, text: str, instructions: str = "") -> None:
        self._requests.put(messages.text_request(text, instructions))

    def request_reply(self, instructions: str = "") -> None:
        """A reply with no user input (see AsyncSession.request_reply)."""
        self._requests.put(messages.reply_request(instructions))

    def add_context(self, text: str) -> None:
        """Context for every later turn (see AsyncSession.add_context)."""
        self._requests.put(messages.context_request(text))

    def update_instructions(self, system_prompt: str) -> None:
        """Replace the session's system prompt from the next turn on."""
        self._requests.put(messages.instructions_request(system_prompt))

    def press_key(self, digits: str) -> None:
        """DTMF keys (0-9 * # A-D): a KeyPressed event and a typed turn (see AsyncSession.press_key)."""
        self._requests.put(messages.key_press_request(digits))

    def report_playback(self, turn_id: int, played_ms: float) -> None:
        """How much of ``turn_id``'s reply audio has been played, in ms (see AsyncSession)."""
        self._requests.put(messages.playback_request(turn_id, played_ms))

    def send_tool_result(self, call_id: str, output: Any = "", error: str = "") -> None:
        """As :meth:`AsyncSession.send_tool_result`."""
        self._requests.put(messages.tool_result_request(call_id, output, error))

    def interrupt(self) -> None:
        self._requests.put(messages.control_request(messages.INTERRUPT))

    def end_input(self) -> None:
        if not self._closed_input:
            self._closed_input = True
            self._requests.put(messages.control_request(messages.END_OF_INPUT))
            self._requests.put(None)

    def _stream(self) -> Iterator[Event]:
        try:
            for message in self._responses:
                yield from_proto(message)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    def events(self) -> Iterator[Event]:
        """Server events (SessionStarted first) until the stream ends."""
        while self._replay:
            yield self._replay.pop(0)
        yield from self._stream()

    def __iter__(self) -> Iterator[Event]:
        return self.events()

    def close(self) -> None:
        self._responses.cancel()
        self._channel.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
