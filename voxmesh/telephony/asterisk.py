"""Asterisk's WebSocket channel driver (``chan_websocket``, Asterisk 20.16/21.11/22.6/23+), as Asterisk documents it.

Asterisk dials the edge (``Dial(WebSocket/voxmesh/c(ulaw))`` with a
``websocket_client.conf`` entry whose URI is ``ws://HOST:8081/asterisk``) and:

- sends ``MEDIA_START`` first (``connection_id``, ``channel``, ``channel_id``,
  ``format``, ``optimal_frame_size``; JSON, or the deprecated plain-text
  ``MEDIA_START key:value ...`` line: the edge answers in the format it was spoken to);
- streams the caller's audio as BINARY frames (raw µ-law, 160 bytes per 20 ms);
- sends ``DTMF_END`` (``digit``), ``MEDIA_XOFF``/``MEDIA_XON`` (its queue of
  our audio is full / has room again), ``MEDIA_MARK_PROCESSED`` (``correlation_id``:
  a ``MARK_MEDIA`` we sent reached the front of its queue, so the audio before
  it has played), and closes the socket when the call ends.

We send the reply as BINARY frames of whole ``optimal_frame_size`` multiples
(Asterisk drops a partial frame's bytes, so a remainder is held back for the
next chunk and padded with silence when the reply ends), ``MARK_MEDIA`` after
each chunk, and ``FLUSH_MEDIA`` on a barge-in. While Asterisk says XOFF, audio
and marks wait here (in order, bounded) and are sent on XON; ``FLUSH_MEDIA``
never waits, and drops what waits here too.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from voxmesh.g711 import ULAW_SILENCE
from voxmesh.telephony.call_frames import (
    DTMF_KEYS,
    CallerAudio,
    CallFrame,
    CallRefused,
    CallStart,
    Ignored,
    KeyPressed,
    MarkPlayed,
    MediaFlow,
    Send,
)

#: The codec this edge speaks (``c(ulaw)`` in the dial string).
ASTERISK_FORMAT = "ulaw"
#: Asterisk closes a socket (and hangs up) on a message above 65 500 bytes: stay well under.
MAX_MEDIA_MESSAGE_BYTES = 32_000
#: Audio held while Asterisk says XOFF, µ-law bytes (60 s): past it the call is closed.
MAX_HELD_BYTES = 60 * 8_000


def _plain_fields(words: list[str]) -> dict[str, str]:
    """``key:value`` words of a plain-text event; a bare word is the positional ``correlation_id``."""
    fields: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition(":")
        if sep:
            fields[key] = value
        else:
            fields.setdefault("correlation_id", word)
    return fields


class AsteriskStream:
    """One chan_websocket media socket: parses Asterisk's frames, builds our commands."""

    def __init__(self, max_media_bytes: int) -> None:
        self.max_media_bytes = max_media_bytes
        self.json_control = True
        self.frame_bytes = 160
        self.started = False

    def parse(self, message: str | bytes) -> CallFrame:
        if isinstance(message, bytes):
            if not self.started:
                raise CallRefused("media before MEDIA_START")
            if len(message) > self.max_media_bytes:
                raise CallRefused(
                    f"a media frame of {len(message)} bytes (most {self.max_media_bytes})", close_code=1009
                )
            return CallerAudio(message)
        event, fields = self._event(message)
        if event == "MEDIA_START":
            return self._start(fields)
        if not self.started:
            raise CallRefused(f"{event!r} before MEDIA_START")
        if event == "DTMF_END":
            digit = fields.get("digit")
            if not isinstance(digit, str) or digit.upper() not in DTMF_KEYS:
                raise CallRefused(f"DTMF_END digit must be one of 0-9 * # A-D, got {digit!r}")
            return KeyPressed(digit.upper())
        if event == "MEDIA_MARK_PROCESSED":
            return MarkPlayed(str(fields.get("correlation_id", "")))
        if event in ("MEDIA_XOFF", "MEDIA_XON"):
            return MediaFlow(paused=event == "MEDIA_XOFF")
        # STATUS, QUEUE_DRAINED, MEDIA_BUFFERING_COMPLETED, and events of later releases.
        return Ignored(event)

    def _event(self, text: str) -> tuple[str, dict[str, Any]]:
        stripped = text.strip()
        if stripped.startswith("{"):
            try:
                data = json.loads(stripped)
            except (json.JSONDecodeError, RecursionError) as exc:
                raise CallRefused(f"not JSON ({exc})") from None
            event = data.get("event") if isinstance(data, dict) else None
            if not isinstance(event, str):
                raise CallRefused("a JSON event needs an 'event' string")
            return event, data
        words = stripped.split()
        if not words or not words[0].replace("_", "").isalnum():
            raise CallRefused(f"not an Asterisk event: {stripped[:40]!r}")
        return words[0], _plain_fields(words[1:])

    def _start(self, fields: dict[str, Any]) -> CallStart:
        if self.started:
            raise CallRefused("a second MEDIA_START")
        media_format = fields.get("format", ASTERISK_FORMAT)
        if media_format != ASTERISK_FORMAT:
            raise CallRefused(f"format {media_format!r}: dial with c(ulaw), this edge takes µ-law at 8000 Hz")
        try:
            self.frame_bytes = int(fields.get("optimal_frame_size", 160))
        except (TypeError, ValueError):
            raise CallRefused("optimal_frame_size must be a number") from None
        if not 80 <= self.frame_bytes <= 8000:
            raise CallRefused(f"optimal_frame_size {self.frame_bytes} is out of range")
        variables = fields.get("channel_variables") or {}
        if not isinstance(variables, dict):
            raise CallRefused("channel_variables must be an object")
        self.started = True
        # The key of a plain-text event is bare (no JSON) the whole call; answer in kind.
        self.json_control = "event" in fields
        call_id = fields.get("channel_id") or fields.get("channel") or ""
        return CallStart(
            str(fields.get("connection_id", "")), str(call_id), {str(k): str(v) for k, v in variables.items()}
        )

    def command(self, name: str, **params: str) -> str:
        if self.json_control:
            return json.dumps({"command": name, **params}, separators=(",", ":"))
        return " ".join([name, *params.values()])


class AsteriskLine:
    """The call bridge's PhoneLine over a chan_websocket socket: whole frames, marks, flush, XOFF/XON."""

    def __init__(self, stream: AsteriskStream, send: Send) -> None:
        self._stream = stream
        self._send = send
        self._partial = b""  # less than one frame, held for the next chunk
        self._paused = False
        self._held: deque[str | bytes] = deque()  # what waits for XON, in order
        self._held_bytes = 0

    @property
    def held_back(self) -> int:
        return len(self._partial)

    async def play(self, ulaw: bytes) -> None:
        data = self._partial + ulaw
        whole = len(data) - len(data) % self._stream.frame_bytes
        self._partial = data[whole:]
        for start in range(
            0, whole, MAX_MEDIA_MESSAGE_BYTES - MAX_MEDIA_MESSAGE_BYTES % self._stream.frame_bytes
        ):
            end = min(
                whole, start + MAX_MEDIA_MESSAGE_BYTES - MAX_MEDIA_MESSAGE_BYTES % self._stream.frame_bytes
            )
            await self._out(data[start:end])

    async def mark(self, name: str) -> None:
        await self._out(self._stream.command("MARK_MEDIA", correlation_id=name))

    async def reply_done(self) -> None:
        if self._partial:
            pad = bytes([ULAW_SILENCE]) * (self._stream.frame_bytes - len(self._partial))
            self._partial, last = b"", self._partial + pad
            await self._out(last)

    async def clear(self) -> None:
        self._held.clear()
        self._held_bytes = 0
        self._partial = b""
        await self._send(self._stream.command("FLUSH_MEDIA"))

    async def flow(self, paused: bool) -> None:
        self._paused = paused
        while not self._paused and self._held:
            item = self._held.popleft()
            if isinstance(item, bytes):
                self._held_bytes -= len(item)
            await self._send(item)

    async def _out(self, item: str | bytes) -> None:
        if not self._paused:
            await self._send(item)
            return
        if isinstance(item, bytes):
            if self._held_bytes + len(item) > MAX_HELD_BYTES:
                raise CallRefused(
                    f"Asterisk said MEDIA_XOFF and held it past {MAX_HELD_BYTES // 8000} s of reply"
                )
            self._held_bytes += len(item)
        self._held.append(item)
