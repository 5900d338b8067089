"""One phone call ⇄ one gateway Converse session, whatever protocol the phone side speaks.

Audio stays G.711 µ-law at 8 kHz on the phone side; the session is opened at
8 kHz both ways, so the gateway resamples: the vad and the transcriber hear
16 kHz (Smart Turn silently misjudges 8 kHz input) and the reply comes back at
8 kHz, ready to encode.

Playback position comes from marks, as the phone side plays: a mark follows
every reply chunk (and every ``mark_interval_ms`` inside a long one), the
phone side echoes it when the audio before it has played, and the echo is
reported to the gateway as that turn's played ms. The first chunk of a turn
reports 0 ms, so a barge-in before any echo keeps nothing rather than the
gateway's real-time estimate (a phone plays from its own buffer, which the
gateway cannot see). A barge-in (the gateway's ``Interrupted``) sends ``clear``
at once and nothing of that turn after it; the marks a ``clear`` flushes back
(Twilio echoes them) are not playback and are ignored. A key press goes to
the gateway as a ``KeyPress``: the gateway answers ``KeyPressed`` (logged here
with the turn it opened) and puts "The caller pressed 5." into the conversation.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from voxmesh import logs
from voxmesh.client import AsyncSession, AudioOut, Interrupted, KeyPressed, StageError, TurnComplete
from voxmesh.g711 import G711_RATE_HZ, ulaw_decode, ulaw_encode
from voxmesh.telephony import metrics

log = logging.getLogger("voxmesh.telephony")

#: The sample rate of the call both ways, and so of the Converse session.
CALL_RATE_HZ = G711_RATE_HZ
#: Marks remembered at most: a phone side that never echoes them cannot grow the map without bound.
MAX_PENDING_MARKS = 1024


class PhoneLine(Protocol):
    """What the bridge sends to the phone side (each protocol module implements it)."""

    @property
    def held_back(self) -> int:
        """Audio given to ``play`` but not sent yet (a line that sends whole frames holds a remainder), bytes."""

    async def play(self, ulaw: bytes) -> None: ...

    async def mark(self, name: str) -> None: ...

    async def clear(self) -> None: ...

    async def reply_done(self) -> None:
        """A turn's reply has all been sent (a line that frames audio sends what it held back)."""

    async def flow(self, paused: bool) -> None:
        """The phone side asked to pause (or resume) media; clear still goes out at once."""

    async def run(self) -> None:
        """Send what the line queues (paced, flow-controlled) until cancelled at the call's end."""


class CallBridge:
    """The state of one call: marks in flight, the turn playing, the turns cut by a barge-in."""

    def __init__(self, line: PhoneLine, session: AsyncSession, mark_interval_ms: int) -> None:
        self._line = line
        self.session = session
        self._mark_every = max(1, mark_interval_ms * CALL_RATE_HZ // 1000)  # samples = µ-law bytes
        #: Mark name → (turn id, ms of that turn's reply sent before the mark).
        self._marks: dict[str, tuple[int, float]] = {}
        self._mark_count = 0
        self._turn = 0  # the turn whose reply is going out
        self._turn_sent = 0  # samples of it sent
        self._since_mark = 0
        self._heard_ms = 0.0  # the last echoed mark of self._turn
        #: Turns the gateway interrupted: nothing of them is sent after the clear.
        self._cut: set[int] = set()

    # ------------------------------------------------------------ phone → gateway

    async def caller_audio(self, ulaw: bytes) -> None:
        samples = ulaw_decode(np.frombuffer(ulaw, dtype=np.uint8))
        metrics.MEDIA_SECONDS.labels("in").inc(len(ulaw) / CALL_RATE_HZ)
        await self.session.send_audio(samples.astype("<i2").tobytes())

    async def key_pressed(self, digit: str) -> None:
        metrics.DTMF_DIGITS.inc()
        log.info("dtmf", extra=logs.fields(digit=digit))
        await self.session.press_key(digit)

    async def mark_played(self, name: str) -> None:
        entry = self._marks.pop(name, None)
        if entry is None:
            return  # not ours, or flushed by a clear
        turn_id, played_ms = entry
        if turn_id in self._cut or turn_id != self._turn:
            return
        self._heard_ms = played_ms
        await self.session.report_playback(turn_id, played_ms)

    # ------------------------------------------------------------ gateway → phone

    async def run(self) -> None:
        """Forward the gateway's events to the phone until the session ends (raises VoxmeshClientError)."""
        async for event in self.session.events():
            if isinstance(event, AudioOut):
                await self._reply_audio(event)
            elif isinstance(event, Interrupted):
                await self._barge_in(event)
            elif isinstance(event, TurnComplete):
                if event.turn_id == self._turn and event.turn_id not in self._cut:
                    await self._line.reply_done()
                if event.latency.voice_to_voice_ms > 0:
                    metrics.VOICE_TO_VOICE.observe(event.latency.voice_to_voice_ms / 1000.0)
                log.info(
                    "turn complete",
                    extra=logs.fields(
                        turn_id=event.turn_id,
                        transcript=event.transcript,
                        reply=event.reply_text,
                        voice_to_voice_ms=round(event.latency.voice_to_voice_ms, 1),
                    ),
                )
            elif isinstance(event, KeyPressed):
                log.info("key pressed", extra=logs.fields(turn_id=event.turn_id, digits=event.digits))
            elif isinstance(event, StageError):
                log.warning(
                    "stage error",
                    extra=logs.fields(stage=event.stage, code=event.code, message=event.message),
                )

    async def _reply_audio(self, event: AudioOut) -> None:
        if event.turn_id in self._cut or event.turn_id < self._turn:
            return
        if event.sample_rate_hz != CALL_RATE_HZ:
            raise RuntimeError(f"the gateway sent {event.sample_rate_hz} Hz audio to an 8 kHz session")
        if event.turn_id != self._turn:
            self._turn, self._turn_sent, self._since_mark, self._heard_ms = event.turn_id, 0, 0, 0.0
            # Nothing of this turn is heard until its first mark comes back.
            await self.session.report_playback(event.turn_id, 0.0)
        ulaw = ulaw_encode(np.frombuffer(event.pcm, dtype="<i2")).tobytes()
        metrics.MEDIA_SECONDS.labels("out").inc(len(ulaw) / CALL_RATE_HZ)
        start = 0
        while start < len(ulaw):
            piece = ulaw[start : start + self._mark_every - self._since_mark]
            start += len(piece)
            await self._line.play(piece)
            self._turn_sent += len(piece)
            self._since_mark += len(piece)
            if self._since_mark >= self._mark_every or start >= len(ulaw):
                await self._send_mark()

    async def _send_mark(self) -> None:
        self._mark_count += 1
        name = f"voxmesh-{self._turn}-{self._mark_count}"
        if len(self._marks) >= MAX_PENDING_MARKS:
            self._marks.pop(next(iter(self._marks)))
        # At the audio the phone side has been sent, not what the line still holds.
        self._marks[name] = (self._turn, 1000.0 * (self._turn_sent - self._line.held_back) / CALL_RATE_HZ)
        self._since_mark = 0
        await self._line.mark(name)

    async def _barge_in(self, event: Interrupted) -> None:
        self._cut.add(event.turn_id)
        await self._line.clear()
        metrics.CLEARS.inc()
        self._marks = {name: m for name, m in self._marks.items() if m[0] != event.turn_id}
        log.info(
            "barge-in: cleared",
            extra=logs.fields(
                turn_id=event.turn_id,
                heard_ms=round(self._heard_ms, 3) if event.turn_id == self._turn else 0.0,
                played_ms=round(event.played_ms, 3),
                spoken_text=event.spoken_text,
            ),
        )
