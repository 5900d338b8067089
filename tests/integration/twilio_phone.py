"""A phone side as Twilio's Media Streams reference describes it (not as voxmesh's edge is written).

From Twilio's "Media Streams - WebSocket Messages" page: Twilio opens the
WebSocket, sends ``connected`` then ``start`` (``streamSid``, ``accountSid``,
``callSid``, ``tracks``, ``customParameters``, ``mediaFormat`` = µ-law 8000 Hz
mono), then a ``media`` message per 20 ms of caller audio (``sequenceNumber``,
``media.track``/``chunk``/``timestamp``/``payload``), ``dtmf`` on a key press
and ``stop`` at the end. On a bidirectional stream it plays the server's
``media`` from a buffer at real time, echoes each server ``mark`` when the
audio before it has played, and on ``clear`` empties the buffer and echoes the
marks still in it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voxmesh.audio import float_to_pcm16
from voxmesh.g711 import ulaw_encode
from voxmesh.synthetic_speech import silence, speak

RATE_HZ = 8_000
FRAME = 160  # 20 ms of µ-law


def speech_8k(text: str) -> np.ndarray:
    """espeak-ng saying ``text`` at 8 kHz, int16 (the caller's voice)."""
    return np.frombuffer(float_to_pcm16(speak(text, RATE_HZ)), dtype="<i2")


def quiet(seconds: float) -> np.ndarray:
    return np.frombuffer(float_to_pcm16(silence(seconds, RATE_HZ)), dtype="<i2")


@dataclass
class Received:
    """What came from the server, in order, with the phone's clock (perf_counter s)."""

    t: float
    event: str
    nbytes: int = 0
    name: str = ""


@dataclass
class TwilioPhone:
    url: str
    parameters: dict[str, str] = field(default_factory=dict)
    stream_sid: str = field(default_factory=lambda: "MZ" + secrets.token_hex(16))
    call_sid: str = field(default_factory=lambda: "CA" + secrets.token_hex(16))
    log: list[Received] = field(default_factory=list)
    #: Marks echoed back: (name, reply bytes played before it — since the last clear, phone clock).
    echoed: list[tuple[str, int, float]] = field(default_factory=list)
    #: Audio played to the caller (µ-law bytes), and played since the last clear.
    played: bytearray = field(default_factory=bytearray)
    played_since_clear: int = 0
    close_code: int | None = None
    close_reason: str = ""
    _ws: ClientConnection | None = None
    _buffer: deque[tuple[str, Any]] = field(default_factory=deque)
    _seq: int = 0
    _chunk: int = 0
    _t0: float = 0.0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def dial(self, announce: bool = True) -> TwilioPhone:
        """Open the stream; ``announce``: send connected + start (False: a test sends its own)."""
        self._ws = await connect(self.url, max_size=None)
        self._t0 = time.perf_counter()
        self._tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._play())]
        if announce:
            await self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
            await self.send(self.start_message())
        return self

    def start_message(self) -> dict[str, Any]:
        return {
            "event": "start",
            "sequenceNumber": str(self._next_seq()),
            "start": {
                "accountSid": "AC" + "0" * 32,
                "streamSid": self.stream_sid,
                "callSid": self.call_sid,
                "tracks": ["inbound"],
                "customParameters": self.parameters,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
            "streamSid": self.stream_sid,
        }

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        assert self._ws is not None
        async with self._send_lock:
            await self._ws.send(json.dumps(message) if isinstance(message, dict) else message)

    def media_message(self, ulaw: bytes) -> dict[str, Any]:
        self._chunk += 1
        return {
            "event": "media",
            "sequenceNumber": str(self._next_seq()),
            "media": {
                "track": "inbound",
                "chunk": str(self._chunk),
                "timestamp": str(self._chunk * 20),
                "payload": base64.b64encode(ulaw).decode("ascii"),
            },
            "streamSid": self.stream_sid,
        }

    async def talk(self, samples: np.ndarray) -> float:
        """Send int16 8 kHz audio as 20 ms media messages at real-time pace; returns when the last was sent."""
        ulaw = ulaw_encode(samples).tobytes()
        start = time.perf_counter()
        for k, i in enumerate(range(0, len(ulaw), FRAME)):
            await self.send(self.media_message(ulaw[i : i + FRAME]))
            delay = start + (k + 1) * 0.02 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        return time.perf_counter()

    async def press(self, digit: str) -> None:
        await self.send(
            {
                "event": "dtmf",
                "streamSid": self.stream_sid,
                "sequenceNumber": str(self._next_seq()),
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    async def hang_up(self) -> None:
        """Twilio's end of a call: stop, then the socket closes."""
        with contextlib.suppress(Exception):
            await self.send(
                {
                    "event": "stop",
                    "sequenceNumber": str(self._next_seq()),
                    "stop": {"accountSid": "AC" + "0" * 32, "callSid": self.call_sid},
                    "streamSid": self.stream_sid,
                }
            )
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def closed(self, timeout_s: float = 30.0) -> tuple[int | None, str]:
        """Wait for the server to close the socket: (close code, reason)."""
        assert self._ws is not None
        async with asyncio.timeout(timeout_s):
            await self._ws.wait_closed()
        rcvd = self._ws.protocol.close_rcvd
        return (rcvd.code, rcvd.reason) if rcvd is not None else (None, "")

    # ------------------------------------------------------------- Twilio's side

    async def _receive(self) -> None:
        assert self._ws is not None
        with contextlib.suppress(ConnectionClosed):
            await self._receive_until_closed(self._ws)

    async def _receive_until_closed(self, ws: ClientConnection) -> None:
        async for raw in ws:
            message = json.loads(raw)
            now = time.perf_counter()
            event = message["event"]
            assert message.get("streamSid") == self.stream_sid, message
            if event == "media":
                ulaw = base64.b64decode(message["media"]["payload"])
                self.log.append(Received(now, "media", len(ulaw)))
                self._buffer.append(("audio", bytearray(ulaw)))
            elif event == "mark":
                name = message["mark"]["name"]
                self.log.append(Received(now, "mark", name=name))
                self._buffer.append(("mark", name))
            elif event == "clear":
                self.log.append(Received(now, "clear", self.played_since_clear))  # nbytes: heard before it
                # Twilio empties the buffer and sends back the marks that were in it.
                flushed = [item for kind, item in self._buffer if kind == "mark"]
                self._buffer.clear()
                self.played_since_clear = 0
                for name in flushed:
                    await self._echo(name)
            else:
                raise AssertionError(f"Twilio does not take {event!r} from a server: {message}")
            self._arrived.set()

    async def _play(self) -> None:
        """The phone's speaker: 20 ms of buffered audio every 20 ms, echoing marks as they are reached."""
        tick = time.perf_counter()
        while True:
            budget = FRAME
            while self._buffer and (budget > 0 or self._buffer[0][0] == "mark"):
                kind, item = self._buffer[0]
                if kind == "mark":
                    self._buffer.popleft()
                    self.echoed.append((item, self.played_since_clear, time.perf_counter()))
                    await self._echo(item)
                    continue
                take = item[:budget]
                del item[:budget]
                self.played += take
                self.played_since_clear += len(take)
                budget -= len(take)
                if not item:
                    self._buffer.popleft()
            tick += 0.02
            await asyncio.sleep(max(0.0, tick - time.perf_counter()))

    async def _echo(self, name: str) -> None:
        with contextlib.suppress(Exception):
            await self.send(
                {
                    "event": "mark",
                    "sequenceNumber": str(self._next_seq()),
                    "streamSid": self.stream_sid,
                    "mark": {"name": name},
                }
            )

    # ------------------------------------------------------------- what a test reads

    def media_bytes(self, after: float = 0.0, before: float = float("inf")) -> int:
        return sum(r.nbytes for r in self.log if r.event == "media" and after <= r.t < before)

    def first(self, event: str, after: float = 0.0) -> Received | None:
        return next((r for r in self.log if r.event == event and r.t >= after), None)

    async def wait_for(self, event: str, after: float = 0.0, timeout_s: float = 60.0) -> Received:
        async with asyncio.timeout(timeout_s):
            while (found := self.first(event, after)) is None:
                self._arrived.clear()
                await self._arrived.wait()
        return found

    async def wait_quiet(self, seconds: float = 1.5, timeout_s: float = 60.0) -> None:
        """Until nothing came from the server for ``seconds`` and the buffer has played out."""
        async with asyncio.timeout(timeout_s):
            while True:
                last = self.log[-1].t if self.log else self._t0
                if not self._buffer and time.perf_counter() - last > seconds:
                    return
                await asyncio.sleep(0.05)
