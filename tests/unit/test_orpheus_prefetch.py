"""A turn's next phrase is started while the current one plays (no silence at a phrase boundary).

The session runs against an engine whose chunks the test releases one by
one, so "started before the current phrase ended" is a fact about the order
of events, not a timing. The playout model (tests/unit/test_orpheus_playout.py)
shows what this buys in audio: the gap at each boundary near 1.0x.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable

import numpy as np

from voxmesh.engine_info import EngineInfo
from voxmesh.errors import EngineUnavailable
from voxmesh.services.orpheus.engine import SpeechEngine
from voxmesh.services.orpheus.orpheus_tokens import SAMPLES_PER_FRAME
from voxmesh.services.orpheus.session import SynthesisSession
from voxmesh.services.orpheus.settings import OrpheusSettings
from voxmesh.v1 import common_pb2, orpheus_pb2

CHUNKS_PER_PHRASE = 3
TEXT = "The first sentence is here. The second sentence is here. And a third one."
PHRASES = ["The first sentence is here.", "The second sentence is here.", "And a third one."]


class ReleasedChunks(SpeechEngine):
    """Records when each phrase is submitted and closed; yields a chunk each time the test releases one."""

    sample_rate_hz = 24_000

    def __init__(self, failing: str = "") -> None:
        self.submitted: list[str] = []
        self.closed: list[str] = []
        #: A phrase whose synthesis fails at once.
        self.failing = failing
        self._gates: dict[str, asyncio.Queue[None]] = defaultdict(asyncio.Queue)

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(engine="released", model="test", is_fallback=False)

    def release(self, text: str, chunks: int = 1) -> None:
        for _ in range(chunks):
            self._gates[text].put_nowait(None)

    async def synthesize(
        self, text: str, voice: str, first_in_turn: bool = False
    ) -> AsyncIterator[np.ndarray]:
        self.submitted.append(text)
        if text == self.failing:
            raise EngineUnavailable("the model went away")
        try:
            for _ in range(CHUNKS_PER_PHRASE):
                await self._gates[text].get()
                yield np.zeros(SAMPLES_PER_FRAME, np.float32)
        finally:
            self.closed.append(text)


async def until(condition: Callable[[], bool]) -> None:
    """Let the session's tasks run until ``condition`` holds (a bounded number of loop turns)."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the session never got there")


class Stream:
    """One Synthesize stream on the session, requests sent by the test, events collected."""

    def __init__(self, engine: SpeechEngine) -> None:
        self.session = SynthesisSession(engine, "tara", 24_000, OrpheusSettings())
        self.requests: asyncio.Queue[orpheus_pb2.SynthesizeRequest | None] = asyncio.Queue()
        self.events: list[orpheus_pb2.SynthesizeResponse] = []
        self.task = asyncio.create_task(self._run())

    async def _requests(self) -> AsyncIterator[orpheus_pb2.SynthesizeRequest]:
        while (request := await self.requests.get()) is not None:
            yield request

    async def _run(self) -> None:
        async for event in self.session.run(self._requests()):
            self.events.append(event)

    def send(self, **request: object) -> None:
        self.requests.put_nowait(orpheus_pb2.SynthesizeRequest(**request))  # type: ignore[arg-type]

    def kinds(self, index: int | None = None) -> list[str]:
        return [
            str(e.WhichOneof("event"))
            for e in self.events
            if index is None or getattr(e, str(e.WhichOneof("event"))).phrase_index == index
        ]


async def test_the_next_phrase_is_submitted_once_the_current_one_has_its_first_audio() -> None:
    engine = ReleasedChunks()
    stream = Stream(engine)
    stream.send(text=orpheus_pb2.TextDelta(turn_id=1, text=TEXT))
    stream.send(end_of_text=orpheus_pb2.EndOfText(turn_id=1))
    await until(lambda: engine.submitted == PHRASES[:1])
    # Nothing shares the first phrase's time to first audio.
    for _ in range(50):
        await asyncio.sleep(0)
    assert engine.submitted == PHRASES[:1]

    engine.release(PHRASES[0])
    await until(lambda: len(engine.submitted) == 2)
    # Submitted while the first phrase has only its first chunk out ...
    assert stream.kinds() == ["phrase_started", "audio"]
    assert engine.submitted == PHRASES[:2]
    # ... and it is generated meanwhile: all its audio is ready before the first phrase ends.
    engine.release(PHRASES[1], CHUNKS_PER_PHRASE)
    await until(lambda: PHRASES[1] in engine.closed)
    # At most two phrases under way: the third waits for the second's first audio to go out.
    assert engine.submitted == PHRASES[:2]
    assert stream.kinds() == ["phrase_started", "audio"]

    engine.release(PHRASES[0], CHUNKS_PER_PHRASE - 1)
    await until(lambda: len(engine.submitted) == 3)
    engine.release(PHRASES[2], CHUNKS_PER_PHRASE)
    stream.requests.put_nowait(None)
    await asyncio.wait_for(stream.task, 10)
    # The client hears the phrases in order, each whole, its audio after its start.
    per_phrase = ["phrase_started", *["audio"] * CHUNKS_PER_PHRASE, "phrase_done"]
    assert stream.kinds() == per_phrase * 3 + ["done"]
    started = [e.phrase_started.text for e in stream.events if e.WhichOneof("event") == "phrase_started"]
    assert started == PHRASES


async def test_a_cancel_stops_the_playing_phrase_and_the_one_started_ahead() -> None:
    engine = ReleasedChunks()
    stream = Stream(engine)
    stream.send(text=orpheus_pb2.TextDelta(turn_id=1, text=TEXT))
    await until(lambda: engine.submitted == PHRASES[:1])
    engine.release(PHRASES[0])
    await until(lambda: len(engine.submitted) == 2)
    stream.send(cancel=common_pb2.CancelTurn(turn_id=1))
    await until(lambda: len(engine.closed) == 2)
    assert sorted(engine.closed) == sorted(PHRASES[:2])
    stream.requests.put_nowait(None)
    await asyncio.wait_for(stream.task, 10)
    assert engine.submitted == PHRASES[:2]
    assert "done" not in stream.kinds()


async def test_a_phrase_that_fails_ahead_fails_the_turn_only_after_the_phrase_before_it_played() -> None:
    engine = ReleasedChunks(failing=PHRASES[1])
    stream = Stream(engine)
    stream.send(text=orpheus_pb2.TextDelta(turn_id=1, text=TEXT))
    stream.send(end_of_text=orpheus_pb2.EndOfText(turn_id=1))
    await until(lambda: engine.submitted == PHRASES[:1])
    engine.release(PHRASES[0])
    await until(lambda: len(engine.submitted) == 2)  # failed already, while the first plays
    engine.release(PHRASES[0], CHUNKS_PER_PHRASE - 1)
    await until(lambda: "failed" in stream.kinds())
    stream.requests.put_nowait(None)
    await asyncio.wait_for(stream.task, 10)
    assert stream.kinds() == [
        "phrase_started",
        *["audio"] * CHUNKS_PER_PHRASE,
        "phrase_done",
        "phrase_started",
        "failed",
    ]
    failed = stream.events[-1].failed
    assert failed.turn_id == 1 and failed.code == "UNAVAILABLE" and "went away" in failed.message
    assert engine.submitted == PHRASES[:2]  # the third is never started
