"""What a phone side says during a call, whatever its protocol: typed frames for the call bridge.

Each protocol module (:mod:`.twilio`, ...) turns its wire messages into these
and raises :class:`CallRefused` for anything it cannot accept: the server then
closes that call with the reason logged, and no other call notices.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


class CallRefused(Exception):
    """The phone side sent something this call cannot go on with; ``reason`` is logged and sent in the close."""

    def __init__(self, reason: str, close_code: int = 1008, outcome: str = "protocol_error") -> None:
        super().__init__(reason)
        self.reason = reason
        #: RFC 6455: 1008 policy (bad token, bad frame), 1009 too big, 1011 the mesh failed.
        self.close_code = close_code
        #: The ``outcome`` label of voxmesh_telephony_calls_ended_total.
        self.outcome = outcome


@dataclass(frozen=True)
class CallStart:
    """The call is up: its ids, the parameters the phone side was given (TwiML ``<Parameter>``s)."""

    stream_id: str
    call_id: str
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CallerAudio:
    """The caller's audio: G.711 µ-law at 8 kHz, one byte per sample."""

    ulaw: bytes


@dataclass(frozen=True)
class KeyPressed:
    """A DTMF key: 0-9, *, #, A-D."""

    digit: str


@dataclass(frozen=True)
class MarkPlayed:
    """The phone side reached a mark we sent: the audio before it was played (or cleared)."""

    name: str


@dataclass(frozen=True)
class CallStopped:
    """The phone side ended the stream (the caller hung up, or the call moved on)."""


@dataclass(frozen=True)
class MediaFlow:
    """Flow control from the phone side: ``paused`` until it says resume (Asterisk's MEDIA_XOFF/XON)."""

    paused: bool


@dataclass(frozen=True)
class Ignored:
    """A message the protocol allows and the call has no use for (``connected``, unknown future events)."""

    what: str


CallFrame = CallStart | CallerAudio | KeyPressed | MarkPlayed | MediaFlow | CallStopped | Ignored
DTMF_KEYS = frozenset("0123456789*#ABCD")
#: Sends one WebSocket message (text or binary) to the phone side.
Send = Callable[[str | bytes], Awaitable[None]]
