"""Live partial transcripts: the voxtral service with Voxtral Realtime on a tiny random checkpoint.

``voxmesh serve voxtral --engine transformers --model <tiny 2507> --realtime-model
<tiny realtime>``: the realtime checkpoint (``random_checkpoint.save_voxtral_realtime``)
has the real streaming architecture and geometry (80 ms per token, causal
encoder, time-conditioned decoder) and a tekken.json with a streaming audio
section, so mistral-common's online streaming request, the chunked log-mel
features and the generator-fed ``generate`` all run for real. Random weights
give random text: the tests assert on ordering, growth, timing and cancellation.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from voxmesh.audio import float_to_pcm16
from voxmesh.processes import ServiceProcess, free_port
from voxmesh.services.voxtral.random_checkpoint import save_voxtral, save_voxtral_realtime
from voxmesh.synthetic_speech import speak
from voxmesh.v1 import common_pb2, voxtral_pb2, voxtral_pb2_grpc

SENTENCE = "hello, please tell me about the weather today, and tomorrow too"
REPLY_TOKENS = 6
#: 100 ms of 16 kHz PCM16 per message, sent at real-time pace.
PIECE_BYTES = 3200
Request = voxtral_pb2.RespondRequest
Event = voxtral_pb2.RespondResponse


@pytest.fixture(scope="module")
def voxtral(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    root = tmp_path_factory.mktemp("voxtral-realtime")
    model = save_voxtral(str(root / "tiny"))
    realtime = save_voxtral_realtime(str(root / "tiny-realtime"))
    svc = ServiceProcess(
        "voxtral",
        free_port(),
        [
            "--engine", "transformers",
            "--model", model,
            "--realtime-model", realtime,
            "--realtime-delay-ms", "480",
            "--device", "cpu",
            "--dtype", "float32",
            "--metrics-port", "-1",
            "--temperature", "1.0",
            "--max-reply-tokens", str(REPLY_TOKENS),
        ],
        {"HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    svc.start().wait_serving(180)
    yield svc
    svc.stop()


def logged(svc: ServiceProcess, message: str) -> list[dict[str, object]]:
    """The process's JSON log entries whose message starts with ``message`` (other lines skipped)."""
    entries = []
    for line in Path(svc.log_path).read_text().splitlines():
        if line.startswith("{") and message in line:
            entry = json.loads(line)
            if str(entry.get("msg", "")).startswith(message):
                entries.append(entry)
    return entries


class Conversation:
    """A Respond stream driven message by message; events are stamped as they arrive."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.requests: asyncio.Queue[Request | None] = asyncio.Queue()
        self.call = voxtral_pb2_grpc.VoxtralStub(channel).Respond(self._requests(), timeout=90)
        self.events: list[tuple[float, Event]] = []
        self.reader = asyncio.create_task(self._read())

    async def _requests(self) -> AsyncIterator[Request]:
        while (request := await self.requests.get()) is not None:
            yield request

    async def _read(self) -> None:
        async for event in self.call:
            self.events.append((time.perf_counter(), event))

    def send(self, request: Request) -> float:
        self.requests.put_nowait(request)
        return time.perf_counter()

    async def speak(self, turn_id: int, text: str, until: float | None = None) -> None:
        """Stream the utterance at real-time pace (stopping early past ``until`` seconds)."""
        pcm = float_to_pcm16(speak(text))
        started = time.perf_counter()
        for i in range(0, len(pcm), PIECE_BYTES):
            self.send(
                Request(audio=voxtral_pb2.UtteranceAudio(turn_id=turn_id, pcm=pcm[i : i + PIECE_BYTES]))
            )
            sent_s = (i + PIECE_BYTES) / 2 / 16_000
            if until is not None and sent_s >= until:
                return
            await asyncio.sleep(max(0.0, started + sent_s - time.perf_counter()))

    def of_turn(self, turn_id: int) -> list[tuple[float, Event]]:
        return [
            (t, e)
            for t, e in self.events
            if e.WhichOneof("event") != "engine" and getattr(e, str(e.WhichOneof("event"))).turn_id == turn_id
        ]

    async def wait_for(self, predicate: object, timeout_s: float = 60) -> None:
        deadline = time.perf_counter() + timeout_s
        while not any(predicate(e) for _, e in self.events):  # type: ignore[operator]
            assert time.perf_counter() < deadline, "timed out waiting for an event"
            assert not self.reader.done(), f"stream ended: {self.reader}"
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        self.requests.put_nowait(None)
        await asyncio.wait_for(self.reader, 60)


def config(**fields: object) -> Request:
    fields.setdefault("session_id", "rt")
    return Request(config=voxtral_pb2.RespondConfig(**fields))  # type: ignore[arg-type]


def end_of_turn(turn_id: int) -> Request:
    return Request(end_of_turn=voxtral_pb2.EndOfTurn(turn_id=turn_id))


async def test_the_engine_says_it_transcribes_live(voxtral: ServiceProcess) -> None:
    (entry,) = logged(voxtral, "live transcripts")
    assert entry["transcriber"] == "realtime" and entry["delay_ms"] == 480
    assert entry["delay_tokens"] == 6  # 480 ms / 80 ms


async def test_partials_stream_while_speaking_then_final_then_reply(voxtral: ServiceProcess) -> None:
    async with grpc.aio.insecure_channel(voxtral.address) as channel:
        talk = Conversation(channel)
        talk.send(config())  # stream mode is the default
        await talk.speak(1, SENTENCE)
        ended_at = talk.send(end_of_turn(1))
        await talk.wait_for(lambda e: e.WhichOneof("event") == "done")
        await talk.close()
    events = talk.of_turn(1)
    kinds = [str(e.WhichOneof("event")) for _, e in events]
    partials = [(t, e.transcript.text) for t, e in events if e.HasField("transcript")]
    *partials, (final_at, final) = partials
    assert all(not e.transcript.is_final for _, e in events[: len(partials)])
    assert events[len(partials)][1].transcript.is_final
    # Partials arrive while the user is still speaking, not only at the end.
    assert partials and partials[0][0] < ended_at
    assert sum(t < ended_at for t, _ in partials) >= 2
    # Each partial is the whole transcript so far: it grows, and the final extends it.
    texts = [text for _, text in partials]
    for before, after in zip(texts, [*texts[1:], final], strict=True):
        assert after.startswith(before) and after != before
    # The final comes after end of turn (the right pad flushes the delay), then the reply.
    assert final_at > ended_at
    assert kinds[len(partials) + 1 :] == ["reply"] * (len(kinds) - len(partials) - 2) + ["done"]
    assert 0 < events[-1][1].done.generated_tokens <= REPLY_TOKENS
    # The reply's prompt is the transcript as text: no 375-token audio window.
    assert events[-1][1].done.prompt_tokens < 375
    (stop,) = [s for s in logged(voxtral, "realtime transcription stopped") if s.get("turn_id") == 1]
    assert stop["reason"] == "end_of_audio" and stop["delay_ms"] == 480
    # One token per 80 ms chunk, the first chunk also covering the prompt's 6 delay tokens,
    # then 6 delay + 1 + 10 tokens of right pad (mistral-common's n_right_pad_tokens).
    assert stop["tokens"] == stop["chunks"] >= float(stop["audio_s"]) / 0.08 + 10


async def test_cancel_while_speaking_stops_the_worker(voxtral: ServiceProcess) -> None:
    before = len(logged(voxtral, "realtime transcription stopped"))
    async with grpc.aio.insecure_channel(voxtral.address) as channel:
        talk = Conversation(channel)
        talk.send(config(session_id="cancel"))
        await talk.speak(2, SENTENCE, until=1.5)
        await talk.wait_for(lambda e: e.WhichOneof("event") == "transcript", timeout_s=30)
        talk.send(Request(cancel=common_pb2.CancelTurn(turn_id=2)))
        cancelled_at = time.time()
        # The session goes on: a typed turn right after is answered.
        talk.send(Request(text=voxtral_pb2.TextTurn(turn_id=3, text="still there?")))
        await talk.wait_for(lambda e: e.WhichOneof("event") == "done" and e.done.turn_id == 3)
        await talk.close()
    assert not any(e.transcript.is_final for _, e in talk.of_turn(2) if e.HasField("transcript"))
    deadline = time.perf_counter() + 5
    while len(stops := logged(voxtral, "realtime transcription stopped")) == before:
        assert time.perf_counter() < deadline, "the realtime worker did not stop"
        await asyncio.sleep(0.05)
    (stop,) = stops[before:]
    assert stop["reason"] == "cancelled" and float(stop["audio_s"]) <= 1.6
    # Stopped within a step or so of the cancel (generous: CI CPUs are shared).
    assert float(stop["ts"]) - cancelled_at < 1.5


async def test_transcribe_mode_with_audio_sent_at_once(voxtral: ServiceProcess) -> None:
    pcm = float_to_pcm16(speak("good morning"))
    async with grpc.aio.insecure_channel(voxtral.address) as channel:
        talk = Conversation(channel)
        talk.send(config(session_id="dictation", mode=common_pb2.TURN_MODE_TRANSCRIBE))
        talk.send(Request(audio=voxtral_pb2.UtteranceAudio(turn_id=1, pcm=pcm)))
        talk.send(end_of_turn(1))
        await talk.wait_for(lambda e: e.WhichOneof("event") == "done")
        await talk.close()
    events = [e for _, e in talk.of_turn(1)]
    assert [str(e.WhichOneof("event")) for e in events][-2:] == ["transcript", "done"]
    assert events[-2].transcript.is_final and events[-1].done.finish_reason == "transcribe_only"
    texts = [e.transcript.text for e in events[:-1]]
    assert all(b.startswith(a) for a, b in itertools.pairwise(texts))
    (stop,) = [
        s for s in logged(voxtral, "realtime transcription stopped") if s.get("session_id") == "dictation"
    ]
    assert stop["reason"] == "end_of_audio" and stop["tokens"] >= float(stop["audio_s"]) / 0.08 + 10
