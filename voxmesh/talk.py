"""Stream recorded audio to the gateway as a microphone would, collect the reply.

``voxmesh talk`` prints what this returns; the benchmarks drive many of these
at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voxmesh.client import (
    AsyncSession,
    AudioOut,
    Interrupted,
    ReplyText,
    SessionStarted,
    SpeechEnded,
    StageError,
    ToolCall,
    Transcript,
    TurnComplete,
)
from voxmesh.client.playback import PlaybackClock

#: Audio is sent in 20 ms chunks, the usual microphone callback size.
CHUNK_MS = 20


@dataclass
class TalkResult:
    session: SessionStarted | None = None
    transcripts: list[Transcript] = field(default_factory=list)
    reply_text: str = ""
    audio: list[AudioOut] = field(default_factory=list)
    turns: list[TurnComplete] = field(default_factory=list)
    interruptions: list[Interrupted] = field(default_factory=list)
    errors: list[StageError] = field(default_factory=list)
    #: Client-side: first reply audio received minus SpeechEnded received, per turn (ms).
    client_response_ms: dict[int, float] = field(default_factory=dict)

    @property
    def final_transcript(self) -> str:
        finals = [t.text for t in self.transcripts if t.is_final]
        return " ".join(finals)

    def reply_audio(self) -> tuple[np.ndarray, int]:
        """All reply audio as float32 and its sample rate."""
        if not self.audio:
            return np.zeros(
                0, dtype=np.float32
            ), self.session.output_sample_rate_hz if self.session else 24_000
        return np.concatenate([a.samples for a in self.audio]), self.audio[0].sample_rate_hz


async def send_paced(
    session: AsyncSession, audio: np.ndarray, sample_rate_hz: int, realtime: bool = True
) -> None:
    """Send ``audio`` in 20 ms chunks, at real-time pace unless ``realtime`` is False."""
    step = sample_rate_hz * CHUNK_MS // 1000
    start = time.perf_counter()
    for i, offset in enumerate(range(0, len(audio), step)):
        await session.send_audio(audio[offset : offset + step])
        if realtime:
            # Sleep to the chunk's due time, so timing errors do not accumulate.
            delay = start + (i + 1) * CHUNK_MS / 1000 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)


async def collect(session: AsyncSession, result: TalkResult, on_event: Any = None) -> None:
    """Read events until the stream ends, filling ``result``."""
    speech_ended_at: dict[int, float] = {}
    async for event in session.events():
        now = time.perf_counter()
        if on_event is not None:
            on_event(event)
        if isinstance(event, SessionStarted):
            result.session = event
        elif isinstance(event, Transcript):
            result.transcripts.append(event)
        elif isinstance(event, ReplyText):
            result.reply_text += event.delta
        elif isinstance(event, SpeechEnded):
            speech_ended_at[event.turn_id] = now
        elif isinstance(event, AudioOut):
            result.audio.append(event)
            if event.turn_id in speech_ended_at and event.turn_id not in result.client_response_ms:
                result.client_response_ms[event.turn_id] = 1000 * (now - speech_ended_at[event.turn_id])
        elif isinstance(event, TurnComplete):
            result.turns.append(event)
        elif isinstance(event, Interrupted):
            result.interruptions.append(event)
        elif isinstance(event, StageError):
            result.errors.append(event)


#: How often ``talk`` reports its playback position while a reply plays, in seconds.
PLAYBACK_REPORT_S = 0.1


async def report_playback(session: AsyncSession, player: PlaybackClock) -> None:
    """Tell the gateway where playback is (as a player would), whenever it moved."""
    last = (0, 0.0)
    while True:
        await asyncio.sleep(PLAYBACK_REPORT_S)
        position = player.position_ms(time.perf_counter())
        if position[0] and position != last:
            await session.report_playback(*position)
            last = position


async def talk(
    audio: np.ndarray,
    sample_rate_hz: int,
    gateway: str = "127.0.0.1:50051",
    *,
    tail_silence_s: float = 1.5,
    realtime: bool = True,
    token: str | None = None,
    on_event: Any = None,
    answer_tool: Callable[[ToolCall], Awaitable[Any]] | None = None,
    tool_timeout_s: float = 120.0,
    **config: Any,
) -> TalkResult:
    """One conversation: send ``audio`` (then silence, as a live mic would), return the reply.

    The trailing silence lets the VAD's hangover elapse, as it would with a
    microphone that keeps listening. ``answer_tool``: awaited for each
    ToolCall, its return value sent as the result (an exception's text as the
    error); the input ends only once the reply after the calls has ended
    (within ``tool_timeout_s``), since a result can only come before it.
    """
    result = TalkResult()
    async with await AsyncSession.connect(
        gateway, token=token, sample_rate_hz=sample_rate_hz, **config
    ) as session:
        # The reply "plays" at real time as it arrives; its position goes back to the
        # gateway, so a barge-in keeps exactly what was heard.
        player = PlaybackClock()
        answers: list[asyncio.Task[None]] = []
        settled = asyncio.Event()
        settled.set()

        async def answer(call: ToolCall) -> None:
            assert answer_tool is not None
            try:
                output = await answer_tool(call)
            except Exception as exc:
                await session.send_tool_result(call.call_id, error=str(exc) or type(exc).__name__)
            else:
                await session.send_tool_result(call.call_id, output)

        def seen(event: Any) -> None:
            if isinstance(event, AudioOut):
                player.on_audio(event.turn_id, event.duration_ms / 1000.0, time.perf_counter())
            elif isinstance(event, ToolCall) and answer_tool is not None:
                settled.clear()
                answers.append(asyncio.create_task(answer(event)))
            elif isinstance(event, (TurnComplete, Interrupted)):
                settled.set()
            if on_event is not None:
                on_event(event)

        reader = asyncio.create_task(collect(session, result, seen))
        reporter = asyncio.create_task(report_playback(session, player))
        try:
            await send_paced(session, audio, sample_rate_hz, realtime)
            await send_paced(
                session, np.zeros(int(tail_silence_s * sample_rate_hz), np.float32), sample_rate_hz, realtime
            )
            await asyncio.wait_for(settled.wait(), tool_timeout_s)
            reporter.cancel()
            await session.end_input()
            await reader
            await asyncio.gather(*answers)
        finally:
            reporter.cancel()
            reader.cancel()
            for task in answers:
                task.cancel()
    return result
