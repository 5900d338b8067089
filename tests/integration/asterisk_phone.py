"""Asterisk's side of a ``chan_websocket`` call, as Asterisk's WebSocket channel driver page describes it.

Asterisk connects to the app, sends ``MEDIA_START`` (JSON control format, or
the legacy plain-text line), then the caller's audio as BINARY frames of
``optimal_frame_size`` (160 bytes of µ-law per 20 ms), ``DTMF_END`` on a key.
The app's BINARY media goes into a frame queue played one frame per 20 ms
(a message's bytes past the last whole frame are dropped); ``MARK_MEDIA``
puts a mark in that queue and ``MEDIA_MARK_PROCESSED`` (with its
``correlation_id``) is sent when the mark reaches the front; ``FLUSH_MEDIA``
discards what is queued; past the XOFF level the queue sends ``MEDIA_XOFF``
and drops media sent after it, and below the XON level sends ``MEDIA_XON``.
Hanging up closes the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from voxmesh.g711 import ulaw_encode

FRAME = 160


@dataclass
class Event:
    t: float
    kind: str  # media, MARK_MEDIA, FLUSH_MEDIA, xoff, xon, dropped, other
    nbytes: int = 0
    name: str = ""


@dataclass
class AsteriskCall:
    url: str
    json_control: bool = True
    media_format: str = "ulaw"
    #: Asterisk's are ~900/~800 frames (18/16 s); a test lowers them to see XOFF happen.
    xoff_frames: int = 900
    xon_frames: int = 800
    #: What was sent before the app could see XOFF is still queued, up to this; past it media is dropped.
    max_frames: int = 1000
    channel_id: str = "pbx1-1733580000.42"
    log: list[Event] = field(default_factory=list)
    played: bytearray = field(default_factory=bytearray)
    #: MEDIA_MARK_PROCESSED sent: (correlation id, bytes played before it, phone clock).
    processed: list[tuple[str, int, float]] = field(default_factory=list)
    odd_sized: int = 0
    _queue: deque[tuple[str, Any]] = field(default_factory=deque)
    _queued_frames: int = 0
    _xoff: bool = False
    _ws: ClientConnection | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _stalled_until: float = 0.0

    async def dial(self, start: bool = True) -> AsteriskCall:
        # websocket_client.conf's `protocols = media`.
        self._ws = await connect(self.url, max_size=None, subprotocols=[Subprotocol("media")])
        assert self._ws.subprotocol == "media"
        self._tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._play())]
        if start:
            await self.event(
                "MEDIA_START",
                connection_id="e226e283-c90a-4ea9-9e37-389000b9ef47",
                channel="WebSocket/voxmesh/0x5140001a0040",
                channel_id=self.channel_id,
                format=self.media_format,
                optimal_frame_size=FRAME,
                ptime=20,
            )
        return self

    async def event(self, name: str, **fields: Any) -> None:
        assert self._ws is not None
        if self.json_control:
            await self._ws.send(json.dumps({"event": name, **fields}))
        else:
            await self._ws.send(" ".join([name, *(f"{k}:{v}" for k, v in fields.items())]))

    async def send_raw(self, message: str | bytes) -> None:
        assert self._ws is not None
        await self._ws.send(message)

    async def talk(self, samples: np.ndarray) -> float:
        """The caller's audio, one 160-byte BINARY frame per 20 ms in real time."""
        assert self._ws is not None
        ulaw = ulaw_encode(samples).tobytes()
        start = time.perf_counter()
        for k, i in enumerate(range(0, len(ulaw), FRAME)):
            await self._ws.send(ulaw[i : i + FRAME].ljust(FRAME, b"\xff"))
            await asyncio.sleep(max(0.0, start + (k + 1) * 0.02 - time.perf_counter()))
        return time.perf_counter()

    def stall(self, seconds: float) -> None:
        """The channel stops taking frames for a while (a congested bridge): the queue fills."""
        self._stalled_until = time.perf_counter() + seconds

    async def hang_up(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def closed(self, timeout_s: float = 30.0) -> tuple[int | None, str]:
        assert self._ws is not None
        async with asyncio.timeout(timeout_s):
            await self._ws.wait_closed()
        rcvd = self._ws.protocol.close_rcvd
        return (rcvd.code, rcvd.reason) if rcvd is not None else (None, "")

    # --------------------------------------------------------------- Asterisk's side

    def _command(self, text: str) -> tuple[str, dict[str, Any]]:
        if self.json_control:
            data = json.loads(text)
            return data["command"], data
        name, *params = text.split()
        return name, {"correlation_id": params[0]} if params else {}

    async def _receive(self) -> None:
        assert self._ws is not None
        with contextlib.suppress(ConnectionClosed):
            async for message in self._ws:
                now = time.perf_counter()
                if isinstance(message, bytes):
                    if self._xoff and self._queued_frames >= self.max_frames:
                        self.log.append(Event(now, "dropped", len(message)))
                        continue
                    self.log.append(Event(now, "media", len(message)))
                    if len(message) % FRAME:
                        self.odd_sized += 1
                    for i in range(0, len(message) - len(message) % FRAME, FRAME):
                        self._queue.append(("frame", message[i : i + FRAME]))
                        self._queued_frames += 1
                    if self._queued_frames >= self.xoff_frames and not self._xoff:
                        self._xoff = True
                        self.log.append(Event(now, "xoff"))
                        await self.event("MEDIA_XOFF", channel_id=self.channel_id)
                else:
                    name, params = self._command(message)
                    self.log.append(Event(now, name, name=str(params.get("correlation_id", ""))))
                    if name == "MARK_MEDIA":
                        self._queue.append(("mark", params.get("correlation_id", "")))
                    elif name == "FLUSH_MEDIA":
                        self._queue = deque(item for item in self._queue if item[0] == "mark")
                        self._queued_frames = 0
                self._arrived.set()

    async def _play(self) -> None:
        tick = time.perf_counter()
        while True:
            if time.perf_counter() < self._stalled_until:
                tick += 0.02
                await asyncio.sleep(max(0.0, tick - time.perf_counter()))
                continue
            while self._queue and self._queue[0][0] == "mark":
                _, name = self._queue.popleft()
                self.processed.append((name, len(self.played), time.perf_counter()))
                with contextlib.suppress(ConnectionClosed):
                    await self.event("MEDIA_MARK_PROCESSED", channel_id=self.channel_id, correlation_id=name)
            if self._queue:
                _, frame = self._queue.popleft()
                self._queued_frames -= 1
                self.played += frame
                if self._xoff and self._queued_frames < self.xon_frames:
                    self._xoff = False
                    self.log.append(Event(time.perf_counter(), "xon"))
                    with contextlib.suppress(ConnectionClosed):
                        await self.event("MEDIA_XON", channel_id=self.channel_id)
            tick += 0.02
            await asyncio.sleep(max(0.0, tick - time.perf_counter()))

    # --------------------------------------------------------------- what a test reads

    def media_bytes(self, after: float = 0.0, before: float = float("inf")) -> int:
        return sum(e.nbytes for e in self.log if e.kind == "media" and after <= e.t < before)

    def first(self, kind: str, after: float = 0.0) -> Event | None:
        return next((e for e in self.log if e.kind == kind and e.t >= after), None)

    async def wait_for(self, kind: str, after: float = 0.0, timeout_s: float = 60.0) -> Event:
        async with asyncio.timeout(timeout_s):
            while (found := self.first(kind, after)) is None:
                self._arrived.clear()
                await self._arrived.wait()
        return found

    async def wait_played_out(self, quiet_s: float = 1.0, timeout_s: float = 60.0) -> None:
        """Until the queue is empty and nothing came for ``quiet_s``."""
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            last = self.log[-1].t if self.log else 0.0
            if not self._queue and time.perf_counter() - last > quiet_s:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError("still playing")
