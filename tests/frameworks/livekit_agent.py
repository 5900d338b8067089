"""A LiveKit Agents voice agent on voxmesh's Realtime edge: run by tests/integration/test_frameworks.py.

Runs in the test-only venv ``.venv-frameworks`` (``make frameworks-venv``:
livekit-agents and livekit-plugins-openai 1.8.9), not in voxmesh's own. The
agent is what a LiveKit user writes, ``RealtimeModel`` left at its defaults
(voice "marin", semantic_vad) with only ``base_url`` pointed at the edge, in
a real ``AgentSession``. No LiveKit server is needed: the session's audio I/O
is a microphone and a speaker in this process, paced in real time as the
framework's console I/O is (``livekit.agents.cli.tcp_console``).

Prints one JSON object (what each step observed) as its last stdout line;
the pytest side asserts on it. Usage: livekit_agent.py BASE_URL SPEECH_DIR.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from livekit import rtc
from livekit.agents import Agent, AgentSession
from livekit.agents.voice import io
from livekit.plugins import openai

RATE_HZ = 24_000
FRAME_SAMPLES = RATE_HZ // 100  # 10 ms, as a microphone delivers it
STEP_TIMEOUT_S = 90.0


class Microphone(io.AudioInput):
    """A live microphone: 10 ms frames in real time, of what ``say`` queued, else silence."""

    def __init__(self) -> None:
        super().__init__(label="test microphone")
        self._pending = bytearray()
        self._next_at: float | None = None

    def say(self, pcm: bytes) -> None:
        self._pending += pcm

    @property
    def speaking(self) -> bool:
        return bool(self._pending)

    async def __anext__(self) -> rtc.AudioFrame:
        now = time.monotonic()
        self._next_at = now if self._next_at is None else self._next_at
        if self._next_at > now:
            await asyncio.sleep(self._next_at - now)
        self._next_at += FRAME_SAMPLES / RATE_HZ
        chunk = bytes(self._pending[: 2 * FRAME_SAMPLES]).ljust(2 * FRAME_SAMPLES, b"\0")
        del self._pending[: 2 * FRAME_SAMPLES]
        return rtc.AudioFrame(chunk, RATE_HZ, 1, FRAME_SAMPLES)


class Speaker(io.AudioOutput):
    """Plays out in real time from the first frame of a segment, like the console's sink."""

    def __init__(self) -> None:
        super().__init__(label="test speaker", capabilities=io.AudioOutputCapabilities(pause=False))
        self._pushed_s = 0.0
        self._started = 0.0
        self._interrupted = asyncio.Event()
        self._flush_task: asyncio.Task[None] | None = None
        self.audio_s = 0.0  # every second of reply audio received

    @property
    def playing(self) -> bool:
        return self._pushed_s > 0 and time.monotonic() - self._started < self._pushed_s

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        if not self._pushed_s:
            self._started = time.monotonic()
            self.on_playback_started(created_at=time.time())
        self._pushed_s += frame.duration
        self.audio_s += frame.duration

    def flush(self) -> None:
        super().flush()
        if self._pushed_s:
            self._interrupted.clear()
            self._flush_task = asyncio.ensure_future(self._play_out())

    def clear_buffer(self) -> None:
        if self._pushed_s:
            self._interrupted.set()

    async def _play_out(self) -> None:
        remaining = self._started + self._pushed_s - time.monotonic()
        try:
            await asyncio.wait_for(self._interrupted.wait(), max(0.0, remaining))
            interrupted = True
        except TimeoutError:
            interrupted = False
        played = min(self._pushed_s, time.monotonic() - self._started) if interrupted else self._pushed_s
        self._pushed_s = 0.0
        self.on_playback_finished(playback_position=played, interrupted=interrupted)


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {STEP_TIMEOUT_S:.0f} s for {what}")
        await asyncio.sleep(0.05)


def assistant_texts(session: AgentSession) -> list[str]:
    return [
        item.text_content or ""
        for item in session.history.items
        if item.type == "message" and item.role == "assistant"
    ]


async def main(base_url: str, speech: Path) -> dict[str, Any]:
    observed: dict[str, Any] = {"errors": [], "client_events": []}
    model = openai.realtime.RealtimeModel(base_url=base_url, api_key="unused-by-voxmesh")
    session = AgentSession(llm=model)
    mic, speaker = Microphone(), Speaker()
    session.input.audio = mic
    session.output.audio = speaker
    session.on("error", lambda ev: observed["errors"].append(f"{type(ev.error).__name__}: {ev.error}"))
    finals: list[str] = []
    session.on("user_input_transcribed", lambda ev: ev.is_final and finals.append(ev.transcript))
    agent = Agent(instructions="You are Vox, a helpful assistant.")
    await session.start(agent)
    rt = agent.realtime_llm_session
    rt.on("openai_client_event_queued", lambda ev: observed["client_events"].append(ev.get("type")))
    replies: list[str] = []  # each response.done's transcript, as the framework received it

    def on_server_event(event: dict[str, Any]) -> None:
        if event.get("type") == "error":
            observed["errors"].append(event["error"])
        elif event.get("type") == "conversation.item.truncated":
            observed.setdefault("truncated", []).append(event)
        elif event.get("type") == "response.done":
            output = event["response"].get("output") or [{}]
            replies.append(((output[0].get("content") or [{}])[0]).get("transcript") or "")

    rt.on("openai_server_event_received", on_server_event)
    rt.on(
        "openai_server_event_received",
        lambda ev: (
            ev.get("type") == "voxmesh.warning" and observed.setdefault("warnings", []).append(ev["warning"])
        ),
    )

    async def settle() -> None:
        """Until the agent is listening again with nothing left to play or say."""
        await until(
            lambda: not mic.speaking and not speaker.playing and session.agent_state == "listening",
            "the agent to listen again",
        )

    def new_replies(since: int) -> list[str]:
        return replies[since:]

    # 1. A greeting before the user says anything: generate_reply(instructions=...).
    mark = len(replies)
    handle = session.generate_reply(instructions="Greet the user and offer your help.")
    await asyncio.wait_for(handle.wait_for_playout(), STEP_TIMEOUT_S)
    observed["greeting"] = {
        "text": assistant_texts(session)[-1],
        "replies": new_replies(mark),
        "interrupted": handle.interrupted,
    }
    await settle()

    # 2. A typed turn.
    mark = len(replies)
    result = session.run(user_input="hello there")
    await asyncio.wait_for(result, STEP_TIMEOUT_S)
    observed["typed"] = {"text": assistant_texts(session)[-1], "replies": new_replies(mark)}
    await settle()

    # 3. A spoken turn: the microphone says it; the server's turn detection answers.
    before, mark = len(assistant_texts(session)), len(replies)
    mic.say((speech / "hello_world.pcm").read_bytes())
    await until(lambda: len(assistant_texts(session)) > before, "the spoken turn's reply")
    observed["spoken"] = {
        "heard": finals[-1] if finals else "",
        "text": assistant_texts(session)[-1],
        "replies": new_replies(mark),
    }
    await settle()

    # 4. An interruption: the user speaks over a long reply.
    audio_before, mark = speaker.audio_s, len(replies)
    handle = session.generate_reply(instructions=(speech / "long_instructions.txt").read_text())
    await until(lambda: speaker.playing and speaker.audio_s - audio_before > 2.0, "the long reply to play")
    mic.say((speech / "barge_in.pcm").read_bytes())
    await asyncio.wait_for(handle.wait_for_playout(), STEP_TIMEOUT_S)
    await settle()
    observed["interruption"] = {"interrupted": handle.interrupted, "replies": new_replies(mark)}

    # 5. Appended context: a system message added to the agent's chat context.
    ctx = agent.chat_ctx.copy()
    ctx.add_message(role="system", content="The user's name is Ada.")
    await agent.update_chat_ctx(ctx)
    mark = len(replies)
    handle = session.generate_reply()
    await asyncio.wait_for(handle.wait_for_playout(), STEP_TIMEOUT_S)
    observed["context"] = {"text": assistant_texts(session)[-1], "replies": new_replies(mark)}

    observed["reply_audio_s"] = round(speaker.audio_s, 2)
    await session.aclose()
    await model.aclose()
    return observed


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    print(json.dumps(asyncio.run(main(sys.argv[1], Path(sys.argv[2])))))
