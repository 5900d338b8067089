"""A Pipecat pipeline on voxmesh's Realtime edge: run by tests/integration/test_frameworks.py.

Runs in the test-only venv ``.venv-frameworks`` (``make frameworks-venv``:
pipecat-ai[openai] 1.14.0). The pipeline is Pipecat's own speech-to-speech
shape, ``transport.input() → user aggregator → OpenAIRealtimeLLMService →
transport.output() → assistant aggregator``, the service at its defaults
with only ``base_url`` pointed at the edge. The transport is a microphone and
a speaker in this process, written on Pipecat's transport base classes as
its local-audio transport is (``pipecat.transports.local.audio``): 20 ms
input frames in real time, output written at playback pace.

What Pipecat does with text is what is tested: the first context's system
message becomes the session's instructions and its user message a typed
turn; an ``LLMMessagesAppendFrame`` queued at the service becomes ``system``
items (appended context) and, with ``run_llm``, a response with no new user
input once the assistant aggregator has taken it in (upstream of the user
aggregator, the frame only updates the context, which a realtime service
does not send again).

Prints one JSON object (what each step observed) as its last stdout line.
Usage: pipecat_pipeline.py BASE_URL SPEECH_DIR.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    EndFrame,
    InputAudioRawFrame,
    InterruptionFrame,
    LLMMessagesAppendFrame,
    LLMRunFrame,
    OutputAudioRawFrame,
    StartFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineTask
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.openai.realtime import events as realtime_events
from pipecat.services.openai.realtime.llm import OpenAIRealtimeLLMService
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams

RATE_HZ = 24_000
FRAME_SAMPLES = RATE_HZ // 50  # 20 ms, as Pipecat's local transport reads a device
STEP_TIMEOUT_S = 90.0


class Microphone(BaseInputTransport):
    """A live microphone: 20 ms frames in real time, of what ``say`` queued, else silence."""

    def __init__(self, params: TransportParams) -> None:
        super().__init__(params)
        self._pending = bytearray()
        self._task: asyncio.Task[None] | None = None

    def say(self, pcm: bytes) -> None:
        self._pending += pcm

    @property
    def speaking(self) -> bool:
        return bool(self._pending)

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)
        if self._task is None:
            self._task = self.create_task(self._capture())

    async def cleanup(self) -> None:
        if self._task is not None:
            await self.cancel_task(self._task)
            self._task = None
        await super().cleanup()

    async def _capture(self) -> None:
        next_at = time.monotonic()
        while True:
            next_at += FRAME_SAMPLES / RATE_HZ
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            chunk = bytes(self._pending[: 2 * FRAME_SAMPLES]).ljust(2 * FRAME_SAMPLES, b"\0")
            del self._pending[: 2 * FRAME_SAMPLES]
            await self.push_audio_frame(InputAudioRawFrame(audio=chunk, sample_rate=RATE_HZ, num_channels=1))


class Speaker(BaseOutputTransport):
    """A sound card: each frame takes its own duration to write (playback pace)."""

    def __init__(self, params: TransportParams) -> None:
        super().__init__(params)
        self.audio_s = 0.0
        self.last_voiced = 0.0
        self.interruptions = 0

    @property
    def playing(self) -> bool:
        return time.monotonic() - self.last_voiced < 0.5

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def process_frame(self, frame: Any, direction: FrameDirection) -> None:
        if isinstance(frame, InterruptionFrame):
            self.interruptions += 1
        await super().process_frame(frame, direction)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        seconds = len(frame.audio) / 2 / frame.sample_rate
        silent = not any(frame.audio)
        await asyncio.sleep(seconds)
        if not silent:
            self.audio_s += seconds
            self.last_voiced = time.monotonic()
        return True


class LoopbackTransport(BaseTransport):
    def __init__(self, params: TransportParams) -> None:
        super().__init__()
        self.mic = Microphone(params)
        self.speaker = Speaker(params)

    def input(self) -> Microphone:
        return self.mic

    def output(self) -> Speaker:
        return self.speaker


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {STEP_TIMEOUT_S:.0f} s for {what}")
        await asyncio.sleep(0.05)


async def main(base_url: str, speech: Path) -> dict[str, Any]:
    observed: dict[str, Any] = {"errors": [], "client_events": []}
    server_events: list[dict[str, Any]] = []

    # Watch the wire without changing it: every server event as parsed, every client event as sent.
    parse = realtime_events.parse_server_event

    def watched_parse(text: str) -> Any:
        server_events.append(json.loads(text))
        return parse(text)

    realtime_events.parse_server_event = watched_parse  # type: ignore[assignment]

    ws_url = base_url.replace("http", "ws", 1) + "/realtime"  # Pipecat takes the WebSocket URL itself
    llm = OpenAIRealtimeLLMService(api_key="unused-by-voxmesh", base_url=ws_url)
    send = llm.send_client_event

    async def watched_send(event: Any) -> None:
        observed["client_events"].append(event.type)
        await send(event)

    llm.send_client_event = watched_send  # type: ignore[method-assign]

    params = TransportParams(audio_in_enabled=True, audio_out_enabled=True, audio_in_sample_rate=RATE_HZ)
    transport = LoopbackTransport(params)
    context = LLMContext(
        [
            {"role": "system", "content": "You are Vox, a helpful assistant."},
            {"role": "user", "content": "hello there"},
        ]
    )
    user_aggregator, assistant_aggregator = LLMContextAggregatorPair(context)
    pipeline = Pipeline([transport.input(), user_aggregator, llm, transport.output(), assistant_aggregator])
    task = PipelineTask(pipeline)
    runner = PipelineRunner(handle_sigint=False)
    running = asyncio.create_task(runner.run(task))

    def replies() -> list[str]:
        done = [e for e in server_events if e["type"] == "response.done"]
        return [
            ((e["response"].get("output") or [{}])[0].get("content") or [{}])[0].get("transcript", "")
            for e in done
        ]

    def errors() -> list[Any]:
        return [e["error"] for e in server_events if e["type"] == "error"]

    async def reply_after(mark: int, what: str) -> list[str]:
        await until(lambda: len(replies()) > mark or bool(errors()) or running.done(), what)
        await until(lambda: not transport.mic.speaking and not transport.speaker.playing, "the playout")
        return replies()[mark:]

    try:
        # 1. The first context: system → instructions, user → a typed turn (Pipecat's LLMRunFrame).
        await task.queue_frames([LLMRunFrame()])
        observed["typed"] = {"replies": await reply_after(0, "the typed turn's reply")}

        # 2. Appended context that asks for a reply: a system item, then a response with no user input.
        mark = len(replies())
        greeting = [{"role": "system", "content": "Greet the user and offer your help."}]
        await llm.queue_frame(LLMMessagesAppendFrame(messages=greeting, run_llm=True))
        observed["greeting"] = {"replies": await reply_after(mark, "the greeting")}

        # 3. A spoken turn: the microphone says it; the server's turn detection answers.
        mark = len(replies())
        transport.mic.say((speech / "hello_world.pcm").read_bytes())
        observed["spoken"] = {"replies": await reply_after(mark, "the spoken turn's reply")}
        observed["spoken"]["heard"] = [
            e["transcript"]
            for e in server_events
            if e["type"] == "conversation.item.input_audio_transcription.completed"
        ]

        # 4. An interruption: the user speaks over a long reply.
        mark, audio_before = len(replies()), transport.speaker.audio_s
        story = [{"role": "system", "content": (speech / "long_instructions.txt").read_text()}]
        await llm.queue_frame(LLMMessagesAppendFrame(messages=story, run_llm=True))
        await until(lambda: transport.speaker.audio_s - audio_before > 2.0, "the long reply to play")
        interruptions = transport.speaker.interruptions
        transport.mic.say((speech / "barge_in.pcm").read_bytes())
        await until(lambda: len(replies()) > mark + 1 or bool(errors()), "the reply to the interruption")
        observed["interruption"] = {
            "replies": replies()[mark:],
            "playback_stopped": transport.speaker.interruptions > interruptions,
            "truncated": [e for e in server_events if e["type"] == "conversation.item.truncated"],
            "statuses": [e["response"]["status"] for e in server_events if e["type"] == "response.done"][
                mark:
            ],
        }
        observed["still_connected"] = not running.done() and llm._websocket is not None
    except TimeoutError as exc:
        observed["failed"] = str(exc)
        observed["server_events"] = [e["type"] for e in server_events if "delta" not in e["type"]]
    finally:
        observed["errors"] = errors()
        observed["warnings"] = [e["warning"] for e in server_events if e["type"] == "voxmesh.warning"]
        observed["reply_audio_s"] = round(transport.speaker.audio_s, 2)
        await task.queue_frame(EndFrame())
        await asyncio.wait_for(running, 30)
    return observed


if __name__ == "__main__":
    logger.remove()
    logger.add(sys.stderr, level="INFO")
    print(json.dumps(asyncio.run(main(sys.argv[1], Path(sys.argv[2])))))
