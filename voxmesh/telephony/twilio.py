"""Twilio Media Streams over WebSocket (bidirectional ``<Connect><Stream>``), as Twilio documents it.

In (JSON text frames, each with ``event``): ``connected`` (first),
``start`` (once: ``start.streamSid``, ``callSid``, ``customParameters``,
``mediaFormat``), ``media`` (``media.payload``: base64 µ-law 8 kHz, 20 ms each),
``dtmf`` (``dtmf.digit``), ``mark`` (``mark.name``: the audio before a mark we
sent has played — or was dropped by a ``clear``), ``stop``.
Out: ``media`` (``media.payload``), ``mark`` (``mark.name``), ``clear``, each with the ``streamSid``.

Fonoster's ``twilio`` streams send exactly these; Telnyx sends the same events
with snake_case ids (``stream_id``, ``media_format`` with ``PCMU``/``sample_rate``),
taken here too. Only the caller's (inbound) track is heard: a media message
on an ``outbound`` track is ignored.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Any

from voxmesh.g711 import G711_RATE_HZ
from voxmesh.telephony.call_frames import (
    DTMF_KEYS,
    CallerAudio,
    CallFrame,
    CallRefused,
    CallStart,
    CallStopped,
    Ignored,
    KeyPressed,
    MarkPlayed,
    Send,
)

#: The only media format Twilio streams (``start.mediaFormat``).
TWILIO_ENCODING = "audio/x-mulaw"


class TwilioStream:
    """One Media Streams WebSocket: parses what the phone side sends, builds what we send back.

    ``max_media_bytes``: the most audio one media message may carry (µ-law bytes = samples).
    """

    def __init__(self, max_media_bytes: int) -> None:
        self.max_media_bytes = max_media_bytes
        self.stream_sid: str | None = None
        self._stopped = False

    # ------------------------------------------------------------------ in

    def parse(self, message: str | bytes) -> CallFrame:
        """One message → a frame; raises CallRefused naming what is wrong."""
        if isinstance(message, bytes):
            raise CallRefused("a binary frame: Media Streams messages are JSON text")
        try:
            data = json.loads(message)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise CallRefused(f"not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise CallRefused("a message must be a JSON object")
        event = data.get("event")
        if self._stopped:
            raise CallRefused(f"{event!r} after stop")
        if event == "connected":
            return Ignored("connected")
        if event == "start":
            return self._start(data)
        if event in ("media", "dtmf", "mark") and self.stream_sid is None:
            raise CallRefused(f"{event!r} before start")
        if event == "media":
            return self._media(data)
        if event == "dtmf":
            digit = _object(data, "dtmf").get("digit")
            if not isinstance(digit, str) or digit.upper() not in DTMF_KEYS:
                raise CallRefused(f"dtmf.digit must be one of 0-9 * # A-D, got {digit!r}")
            return KeyPressed(digit.upper())
        if event == "mark":
            name = _object(data, "mark").get("name")
            if not isinstance(name, str):
                raise CallRefused("mark.name must be a string")
            return MarkPlayed(name)
        if event == "stop":
            self._stopped = True
            return CallStopped()
        if isinstance(event, str):
            # Providers add events (Telnyx "error", future Twilio ones): not ours to refuse.
            return Ignored(event)
        raise CallRefused(f"event must be a string, got {event!r}")

    def _start(self, data: dict[str, Any]) -> CallStart:
        if self.stream_sid is not None:
            raise CallRefused("a second start")
        start = _object(data, "start")
        sid = (
            start.get("streamSid") or data.get("streamSid") or data.get("stream_id") or data.get("stream_sid")
        )
        if not isinstance(sid, str) or not sid:
            raise CallRefused("start.streamSid is missing")
        media_format = start.get("mediaFormat") or start.get("media_format") or {}
        if not isinstance(media_format, dict):
            raise CallRefused("start.mediaFormat must be an object")
        if media_format:
            encoding = str(media_format.get("encoding", TWILIO_ENCODING)).lower()
            rate = media_format.get("sampleRate", media_format.get("sample_rate", G711_RATE_HZ))
            if encoding not in (TWILIO_ENCODING, "pcmu", "audio/pcmu") or str(rate) != str(G711_RATE_HZ):
                raise CallRefused(f"media format {encoding} at {rate} Hz: this edge takes µ-law at 8000 Hz")
        params = start.get("customParameters") or start.get("custom_parameters") or {}
        if not isinstance(params, dict):
            raise CallRefused("start.customParameters must be an object")
        call_id = start.get("callSid") or start.get("call_control_id") or start.get("call_sid") or ""
        self.stream_sid = sid
        return CallStart(sid, str(call_id), {str(k): str(v) for k, v in params.items()})

    def _media(self, data: dict[str, Any]) -> CallerAudio | Ignored:
        media = _object(data, "media")
        if media.get("track", "inbound") in ("outbound", "outbound_track"):
            return Ignored("outbound media")
        payload = media.get("payload")
        if not isinstance(payload, str):
            raise CallRefused("media.payload must be a base64 string")
        too_big = CallRefused(
            f"media.payload holds more than {self.max_media_bytes} bytes "
            f"({1000 * self.max_media_bytes // G711_RATE_HZ} ms)",
            close_code=1009,
        )
        if len(payload) > (self.max_media_bytes + 2) // 3 * 4:
            raise too_big  # before decoding it
        try:
            ulaw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CallRefused(f"media.payload is not base64 ({exc})") from None
        if len(ulaw) > self.max_media_bytes:
            raise too_big
        return CallerAudio(ulaw)

    # ------------------------------------------------------------------ out

    def media(self, ulaw: bytes) -> str:
        return self._out("media", media={"payload": base64.b64encode(ulaw).decode("ascii")})

    def mark(self, name: str) -> str:
        return self._out("mark", mark={"name": name})

    def clear(self) -> str:
        return self._out("clear")

    def _out(self, event: str, **body: Any) -> str:
        return json.dumps({"event": event, "streamSid": self.stream_sid, **body}, separators=(",", ":"))


def _object(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise CallRefused(f"{data.get('event')}.{key} must be an object")
    return value


class TwilioLine:
    """The call bridge's PhoneLine over a Media Streams socket: media, mark and clear messages."""

    held_back = 0  # every byte goes out as it comes

    def __init__(self, stream: TwilioStream, send: Send) -> None:
        self._stream = stream
        self._send = send

    async def play(self, ulaw: bytes) -> None:
        await self._send(self._stream.media(ulaw))

    async def mark(self, name: str) -> None:
        await self._send(self._stream.mark(name))

    async def clear(self) -> None:
        await self._send(self._stream.clear())

    async def reply_done(self) -> None:
        """Twilio plays whatever length it is sent: nothing to finish."""

    async def flow(self, paused: bool) -> None:
        """Media Streams has no flow control."""

    async def run(self) -> None:
        """Nothing is queued here (Twilio buffers and paces): wait for the call's end."""
        await asyncio.Event().wait()
