"""The orpheus service as a real process with the espeak engine, over gRPC."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from voxmesh.processes import ServiceProcess
from voxmesh.services.orpheus.stream_client import OrpheusStream, events_of_turn
from voxmesh.v1 import orpheus_pb2

SENTENCES = (
    "Hello there, this is the first sentence of the reply. ",
    "Dr. Smith paid 3.14 dollars for it, e.g. at the U.S. store. ",
    "<laugh> And that is all.",
)


@pytest.fixture
def orpheus(start_service: Callable[..., ServiceProcess]) -> ServiceProcess:
    return start_service("orpheus", "--engine", "espeak")


def _pcm_bytes(events: list[orpheus_pb2.SynthesizeResponse]) -> int:
    return sum(len(e.audio.pcm) for e in events if e.WhichOneof("event") == "audio")


async def test_turn_streams_phrases_in_order(orpheus: ServiceProcess) -> None:
    async with OrpheusStream(orpheus.address, voice="leo") as stream:
        assert stream.engine.engine == "espeak" and stream.engine.is_fallback
        text = "".join(SENTENCES)
        # Deltas split mid-word, as an LLM's tokens do.
        for start in range(0, len(text), 7):
            await stream.text(1, text[start : start + 7])
        await stream.end_of_text(1)
        events = await stream.until_done(1)

    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[-1] == "done"
    phrases: list[str] = []
    expect = "phrase_started"
    for event, kind in zip(events[:-1], kinds[:-1], strict=True):
        if kind == "phrase_started":
            assert expect == "phrase_started" and event.phrase_started.phrase_index == len(phrases)
            phrases.append(event.phrase_started.text)
            expect = "audio"
        elif kind == "audio":
            assert expect in ("audio", "audio_or_done")
            assert event.audio.phrase_index == len(phrases) - 1
            assert event.audio.sample_rate_hz == 24_000
            assert len(event.audio.pcm) % 2 == 0 and event.audio.pcm
            expect = "audio_or_done"
        else:
            assert kind == "phrase_done" and expect == "audio_or_done"
            assert event.phrase_done.text == phrases[-1]
            expect = "phrase_started"
    assert phrases == [
        "Hello there, this is the first sentence of the reply.",
        "Dr. Smith paid 3.14 dollars for it, e.g. at the U.S. store.",
        "<laugh> And that is all.",
    ]
    # espeak speaks ~2.5 to 4 words a second at 160 wpm; 25 words.
    audio_s = _pcm_bytes(events) / 2 / 24_000
    assert 4.0 < audio_s < 14.0
    assert abs(events[-1].done.audio_ms - 1000 * audio_s) <= 1


async def test_first_audio_before_the_text_is_complete(orpheus: ServiceProcess) -> None:
    async with OrpheusStream(orpheus.address) as stream:
        await stream.text(1, SENTENCES[0])
        await stream.text(1, "And then")
        first = await stream.next_event()
        assert first.WhichOneof("event") == "phrase_started"
        assert first.phrase_started.text == SENTENCES[0].strip()
        audio = await stream.next_event()
        assert audio.WhichOneof("event") == "audio"
        # Only now the rest of the reply arrives.
        await stream.text(1, " the rest arrives.")
        await stream.end_of_text(1)
        events = await stream.until_done(1)
    texts = [e.phrase_started.text for e in events if e.WhichOneof("event") == "phrase_started"]
    assert texts == ["And then the rest arrives."]


@pytest.mark.parametrize("rate_hz", [16_000, 48_000])
async def test_output_is_resampled_to_the_session_rate(orpheus: ServiceProcess, rate_hz: int) -> None:
    async with OrpheusStream(orpheus.address, sample_rate_hz=rate_hz) as stream:
        await stream.text(1, "One two three four five six.")
        await stream.end_of_text(1)
        events = await stream.until_done(1)
    audio = [e.audio for e in events if e.WhichOneof("event") == "audio"]
    assert audio and all(a.sample_rate_hz == rate_hz for a in audio)
    samples = _pcm_bytes(events) // 2
    assert abs(events[-1].done.audio_ms - 1000 * samples / rate_hz) <= 1
    assert 1.0 < samples / rate_hz < 4.5


async def test_same_text_same_duration_at_any_rate(orpheus: ServiceProcess) -> None:
    durations = []
    for rate_hz in (16_000, 24_000, 48_000):
        async with OrpheusStream(orpheus.address, sample_rate_hz=rate_hz) as stream:
            await stream.text(1, "The duration does not depend on the rate.")
            await stream.end_of_text(1)
            events = await stream.until_done(1)
        durations.append(_pcm_bytes(events) / 2 / rate_hz)
    # soxr's streaming filter keeps every input sample: durations agree to a few ms.
    assert max(durations) - min(durations) < 0.01


async def test_cancel_mid_turn_then_next_turn_works(orpheus: ServiceProcess) -> None:
    async with OrpheusStream(orpheus.address) as stream:
        long_reply = " ".join(f"This is sentence number {n} of a long reply." for n in range(30))
        await stream.text(1, long_reply)
        first = await stream.next_event()
        assert first.WhichOneof("event") == "phrase_started" and first.phrase_started.turn_id == 1
        await stream.cancel(1)
        # Late text for the cancelled turn (crossing the cancel) is ignored.
        await stream.text(1, " More words.")
        await stream.end_of_text(1)
        await stream.text(2, "A new turn.")
        await stream.end_of_text(2)
        events = await stream.until_done(2)
    # Events of turn 1 already in flight may precede the cancel; none may follow
    # turn 2's first event, and turn 1 never completes.
    turn_ids = [getattr(e, e.WhichOneof("event")).turn_id for e in events]
    first_of_2 = turn_ids.index(2)
    assert all(t == 2 for t in turn_ids[first_of_2:])
    assert not any(e.WhichOneof("event") == "done" and e.done.turn_id == 1 for e in events)
    turn2 = events_of_turn(events, 2)
    assert [e.WhichOneof("event") for e in turn2][-1] == "done" and _pcm_bytes(turn2) > 0


async def test_older_turn_finishes_before_a_newer_one(orpheus: ServiceProcess) -> None:
    async with OrpheusStream(orpheus.address) as stream:
        await stream.text(1, "First turn, first sentence. First turn, second sentence.")
        await stream.text(2, "Second turn.")
        await stream.end_of_text(2)
        await stream.end_of_text(1)
        events = await stream.until_done(2)
    turn_ids = [getattr(e, e.WhichOneof("event")).turn_id for e in events]
    assert turn_ids == sorted(turn_ids)
    dones = [e.done.turn_id for e in events if e.WhichOneof("event") == "done"]
    assert dones == [1, 2]


async def test_empty_turn_is_done_with_no_audio(orpheus: ServiceProcess) -> None:
    async with OrpheusStream(orpheus.address) as stream:
        await stream.text(3, "  ... ")
        await stream.end_of_text(3)
        events = await stream.until_done(3)
    assert [e.WhichOneof("event") for e in events] == ["done"]
    assert events[0].done.audio_ms == 0


async def test_unknown_voice_is_invalid_argument(orpheus: ServiceProcess) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async with OrpheusStream(orpheus.address, voice="gandalf"):
            pass
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "voice" in (err.value.details() or "")
    await _still_serves(orpheus)


@pytest.mark.parametrize(
    ("config", "requests", "field"),
    [
        ({"sample_rate_hz": 7_999}, [], "sample_rate_hz"),
        ({"sample_rate_hz": 96_000}, [], "sample_rate_hz"),
        ({"language": "fr"}, [], "language"),
        (None, [{"text": orpheus_pb2.TextDelta(turn_id=1, text="hi")}], "config"),
        ({}, [{"config": orpheus_pb2.SynthesizeConfig()}], "config"),
        ({}, [{}], "request"),
        ({}, [{"text": orpheus_pb2.TextDelta(turn_id=1, text="x" * 5000)}], "text.text"),
        (
            {},
            [
                {"text": orpheus_pb2.TextDelta(turn_id=5, text="Hi.")},
                {"text": orpheus_pb2.TextDelta(turn_id=4, text="Older.")},
            ],
            "text.turn_id",
        ),
        (
            {},
            [
                {"end_of_text": orpheus_pb2.EndOfText(turn_id=1)},
                {"end_of_text": orpheus_pb2.EndOfText(turn_id=1)},
            ],
            "end_of_text.turn_id",
        ),
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field(
    orpheus: ServiceProcess, config: dict[str, Any] | None, requests: list[dict[str, Any]], field: str
) -> None:
    messages = (
        []
        if config is None
        else [orpheus_pb2.SynthesizeRequest(config=orpheus_pb2.SynthesizeConfig(**config))]
    )
    messages += [orpheus_pb2.SynthesizeRequest(**r) for r in requests]
    async with grpc.aio.insecure_channel(orpheus.address) as channel:
        call = orpheus_pb2_grpc_stub(channel).Synthesize(iter(messages), timeout=20)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in call:
                pass
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (err.value.details() or "")
    await _still_serves(orpheus)


async def test_too_much_text_fails_the_turn_not_the_stream(
    start_service: Callable[..., ServiceProcess],
) -> None:
    svc = start_service("orpheus", "--engine", "espeak", "--max-turn-chars", "60")
    async with OrpheusStream(svc.address) as stream:
        await stream.text(1, "Short first sentence. ")
        await stream.text(1, "And much more text than this turn may hold, far too much.")
        await stream.end_of_text(1)
        events = await stream.until_failed_or_done(1)
        assert events[-1].WhichOneof("event") == "failed"
        assert events[-1].failed.code == "INVALID_ARGUMENT" and "text.text" in events[-1].failed.message
        await stream.text(2, "Still here.")
        await stream.end_of_text(2)
        events = await stream.until_done(2)
        assert _pcm_bytes(events) > 0


def orpheus_pb2_grpc_stub(channel: grpc.aio.Channel) -> Any:
    from voxmesh.v1 import orpheus_pb2_grpc

    return orpheus_pb2_grpc.OrpheusStub(channel)


async def _still_serves(svc: ServiceProcess) -> None:
    async with OrpheusStream(svc.address) as stream:
        await stream.text(1, "Still serving.")
        await stream.end_of_text(1)
        events = await asyncio.wait_for(stream.until_done(1), 30)
    assert _pcm_bytes(events) > 0
