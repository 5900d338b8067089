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
next chunk and padded with silence when the reply ends), paced a little ahead
of real time, ``MARK_MEDIA`` after each chunk, and ``FLUSH_MEDIA`` on a
barge-in. While Asterisk says XOFF, audio and marks wait here (in order,
bounded) and are sent on XON; ``FLUSH_MEDIA`` never waits, and drops what waits here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from typing import Any

from voxmesh.g711 import G711_RATE_HZ, ULAW_SILENCE
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
#: Frames per BINARY message we send (100 ms; Asterisk's limit is 65 500 bytes a message).
FRAMES_PER_MESSAGE = 5
#: How far ahead of real time reply audio is sent, s. Asterisk queues ~18 s before MEDIA_XOFF,
#: so XOFF then only comes when its channel stalls, and a barge-in's FLUSH_MEDIA drops at most this.
LEAD_S = 1.0
#: Reply audio waiting here (paced or held by XOFF), µ-law bytes (60 s): past it the call is closed.
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
    """The call bridge's PhoneLine over a chan_websocket socket: whole frames, paced, marks, flush, XOFF/XON.

    Reply audio is queued here and sent by :meth:`run` at most ``LEAD_S`` ahead
    of real time (the reply comes from the gateway faster than that), so
    Asterisk's queue stays far below its XOFF level and a ``FLUSH_MEDIA`` has
    little to discard; while Asterisk says XOFF (its channel stalled), nothing
    is sent until XON. Marks keep their place among the frames.
    """

    def __init__(self, stream: AsteriskStream, send: Send) -> None:
        self._stream = stream
        self._send = send
        self._partial = b""  # less than one frame, held for the next chunk
        self._paused = False
        self._queue: deque[str | bytes] = deque()  # frames and marks not sent yet, in order
        self._queued_bytes = 0
        self._playout_end = 0.0  # perf_counter s when the audio sent so far has played
        self._wake = asyncio.Event()

    @property
    def held_back(self) -> int:
        return len(self._partial)

    async def play(self, ulaw: bytes) -> None:
        data = self._partial + ulaw
        whole = len(data) - len(data) % self._stream.frame_bytes
        self._partial = data[whole:]
        step = self._stream.frame_bytes * max(1, int(FRAMES_PER_MESSAGE))
        for start in range(0, whole, step):
            self._enqueue(data[start : min(whole, start + step)])

    async def mark(self, name: str) -> None:
        self._enqueue(self._stream.command("MARK_MEDIA", correlation_id=name))

    async def reply_done(self) -> None:
        if self._partial:
            pad = bytes([ULAW_SILENCE]) * (self._stream.frame_bytes - len(self._partial))
            self._partial, last = b"", self._partial + pad
            self._enqueue(last)

    async def clear(self) -> None:
        # Never waits behind queued audio (nor XOFF): what is queued here is dropped with it.
        self._queue.clear()
        self._queued_bytes = 0
        self._partial = b""
        self._playout_end = time.perf_counter()
        await self._send(self._stream.command("FLUSH_MEDIA"))

    async def flow(self, paused: bool) -> None:
        self._paused = paused
        self._wake.set()

    def _enqueue(self, item: str | bytes) -> None:
        if isinstance(item, bytes):
            if self._queued_bytes + len(item) > MAX_HELD_BYTES:
                raise CallRefused(
                    f"more than {MAX_HELD_BYTES // 8000} s of reply waiting for Asterisk (MEDIA_XOFF)"
                )
            self._queued_bytes += len(item)
        self._queue.append(item)
        self._wake.set()

    async def run(self) -> None:
        """Send what is queued, paced and flow-controlled, until cancelled (the call's end)."""
        while True:
            if not self._queue or self._paused:
                self._wake.clear()
                await self._wake.wait()
                continue
            item = self._queue[0]
            if isinstance(item, bytes):
                now = time.perf_counter()
                ahead = self._playout_end - now
                if ahead > LEAD_S:
                    self._wake.clear()
                    # A clear or an XOFF wakes it early.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), ahead - LEAD_S)
                    continue
                self._queued_bytes -= len(item)
                self._playout_end = max(self._playout_end, now) + len(item) / G711_RATE_HZ
            self._queue.popleft()
            await self._send(item)
