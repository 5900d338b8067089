"""The orpheus service with the ``transformers`` engine on a tiny random Orpheus + SNAC.

The checkpoint has the real architectures and Orpheus' vocabulary layout
(see ``random_checkpoint``), so prompt building, token streaming, frame
parsing, windowed SNAC decoding and cancellation all run for real; random
weights produce noise, not speech. Where a test needs frames, the server
runs with ``--test-audio-frames-only`` (a logits processor that keeps each
sampled id in the right slot's audio range); without it the random model's
tokens exercise resynchronisation.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from voxmesh.processes import ServiceProcess, free_port
from voxmesh.services.orpheus.orpheus_tokens import (
    END_OF_SPEECH_IDS,
    END_OF_TEXT,
    SAMPLES_PER_FRAME,
    phrase_token_cap,
)
from voxmesh.services.orpheus.random_checkpoint import (
    TINY_ORPHEUS_CONFIG,
    TINY_SNAC_CONFIG,
    byte_tokenizer,
    make_frame_following,
    random_llama,
    random_snac,
    save_orpheus,
    save_snac,
)
from voxmesh.services.orpheus.settings import OrpheusSettings
from voxmesh.services.orpheus.stream_client import OrpheusStream
from voxmesh.services.orpheus.transformers_engine import TransformersEngine
from voxmesh.v1 import orpheus_pb2

#: Tokens per phrase in these tests: 4 frames (~0.34 s of audio, ~1 s on 2 CPU cores).
PHRASE_TOKENS = 28


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("orpheus")
    return save_orpheus(str(root / "orpheus")), save_snac(str(root / "snac"))


def _serve(checkpoint: tuple[str, str], *args: str) -> Iterator[ServiceProcess]:
    model, snac = checkpoint
    svc = ServiceProcess(
        "orpheus",
        free_port(),
        ["--engine", "transformers", "--model", model, "--snac-model", snac, "--metrics-port", "-1", *args],
        {"HF_HUB_OFFLINE": "1"},
    )
    svc.start().wait_serving(180)
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def orpheus(checkpoint: tuple[str, str]) -> Iterator[ServiceProcess]:
    yield from _serve(
        checkpoint,
        "--test-audio-frames-only",
        "--max-phrase-tokens",
        str(PHRASE_TOKENS),
        "--max-sessions",
        "4",
    )


def _log_lines(svc: ServiceProcess, text: str) -> list[str]:
    return [line for line in Path(svc.log_path).read_text().splitlines() if text in line]


def _audio(events: list[orpheus_pb2.SynthesizeResponse]) -> list[orpheus_pb2.PcmChunk]:
    return [e.audio for e in events if e.WhichOneof("event") == "audio"]


async def test_text_deltas_in_whole_frames_out(orpheus: ServiceProcess) -> None:
    async with OrpheusStream(orpheus.address, voice="zac", sample_rate_hz=24_000) as stream:
        assert stream.engine.engine == "transformers" and not stream.engine.is_fallback
        for piece in ("Hel", "lo the", "re. How", " are you", " today?"):
            await stream.text(1, piece)
        await stream.end_of_text(1)
        events = await stream.until_done(1)
    started = [e.phrase_started.text for e in events if e.WhichOneof("event") == "phrase_started"]
    assert started == ["Hello there.", "How are you today?"]
    audio = _audio(events)
    assert audio
    # Before resampling (24 kHz out = SNAC's rate) every chunk is whole frames.
    assert all(len(a.pcm) % (2 * SAMPLES_PER_FRAME) == 0 and a.sample_rate_hz == 24_000 for a in audio)
    for index in (0, 1):
        frames = sum(len(a.pcm) for a in audio if a.phrase_index == index) // (2 * SAMPLES_PER_FRAME)
        # The cap is 4 frames; an END_OF_SPEECH sampled between frames ends a phrase sooner.
        assert 1 <= frames <= PHRASE_TOKENS // 7
    assert events[-1].done.audio_ms == round(1000 * sum(len(a.pcm) for a in audio) / 2 / 24_000)


async def test_first_audio_before_the_last_text_delta(orpheus: ServiceProcess) -> None:
    async with OrpheusStream(orpheus.address) as stream:
        await stream.text(1, "The first sentence. The sec")
        kinds = []
        while "audio" not in kinds:
            kinds.append((await stream.next_event()).WhichOneof("event"))
        assert kinds == ["phrase_started", "audio"]
        await stream.text(1, "ond one.")
        await stream.end_of_text(1)
        events = await stream.until_done(1)
    assert [e.phrase_started.text for e in events if e.WhichOneof("event") == "phrase_started"] == [
        "The second one."
    ]


async def test_output_resampled_to_16k(orpheus: ServiceProcess) -> None:
    async with OrpheusStream(orpheus.address, sample_rate_hz=16_000) as stream:
        await stream.text(1, "Resampled.")
        await stream.end_of_text(1)
        events = await stream.until_done(1)
    audio = _audio(events)
    samples = sum(len(a.pcm) for a in audio) // 2
    assert audio and all(a.sample_rate_hz == 16_000 for a in audio)
    # Whole frames at 24 kHz → 2/3 as many samples at 16 kHz (soxr keeps the length exact).
    frames_24k = samples * 24_000 / 16_000 / SAMPLES_PER_FRAME
    assert abs(frames_24k - round(frames_24k)) < 0.01 and 1 <= round(frames_24k) <= 4


async def test_concurrent_sessions_share_the_decoder(orpheus: ServiceProcess) -> None:
    async def one(voice: str) -> int:
        async with OrpheusStream(orpheus.address, voice=voice) as stream:
            await stream.text(1, f"I am {voice}.")
            await stream.end_of_text(1)
            events = await stream.until_done(1)
        return sum(len(a.pcm) for a in _audio(events))

    sizes = await asyncio.gather(one("tara"), one("leo"), one("mia"))
    assert all(size > 0 and size % (2 * SAMPLES_PER_FRAME) == 0 for size in sizes)


async def test_unknown_voice(orpheus: ServiceProcess) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async with OrpheusStream(orpheus.address, voice="hal"):
            pass
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "voice" in (err.value.details() or "")


@pytest.fixture(scope="module")
def long_phrases(checkpoint: tuple[str, str]) -> Iterator[ServiceProcess]:
    """Phrases of up to 100 frames (~9 s of audio, minutes of CPU): only a cancel ends them soon."""
    yield from _serve(checkpoint, "--test-audio-frames-only", "--max-phrase-tokens", "700")


async def test_cancel_stops_generation_and_the_next_turn_works(long_phrases: ServiceProcess) -> None:
    async with OrpheusStream(long_phrases.address) as stream:
        await stream.text(1, "A phrase that would take half a minute to generate on this machine.")
        await stream.end_of_text(1)
        while (await stream.next_event()).WhichOneof("event") != "audio":
            pass
        await stream.cancel(1)
        await stream.text(2, "Next.")
        await stream.end_of_text(2)
        events: list[orpheus_pb2.SynthesizeResponse] = []
        # Turns are spoken in order: turn 2 starts only once turn 1 is stopped.
        while not events or events[-1].WhichOneof("event") != "audio":
            events.append(await asyncio.wait_for(stream.next_event(), 60))
        await stream.cancel(2)
    turn_ids = [getattr(e, e.WhichOneof("event")).turn_id for e in events]
    assert 2 in turn_ids and all(t == 2 for t in turn_ids[turn_ids.index(2) :])
    assert not any(e.WhichOneof("event") == "done" for e in events)
    for _ in range(100):  # turn 2's stop is logged just after the cancel lands
        stops = _log_lines(long_phrases, "generation stopped")
        if len(stops) >= 2:
            break
        await asyncio.sleep(0.1)
    assert len(stops) == 2
    assert all('"reason": "cancelled"' in line for line in stops)
    assert all(json.loads(line)["tokens"] < 700 for line in stops)


async def test_unconstrained_random_tokens_are_resynchronised_not_decoded(
    checkpoint: tuple[str, str],
) -> None:
    for svc in _serve(checkpoint, "--max-phrase-tokens", "35", "--log-level", "info"):
        async with OrpheusStream(svc.address) as stream:
            await stream.text(1, "Random ids.")
            await stream.end_of_text(1)
            events = await stream.until_done(1)
        # Uniform ids over 157k: a well-formed frame by chance is ~1e-30 likely.
        assert _audio(events) == []
        assert events[-1].done.audio_ms == 0
        dropped = _log_lines(svc, "dropped, not decoded")
        assert len(dropped) == 1 and json.loads(dropped[0])["dropped_tokens"] > 0


# ------------------------------------------------------------ end of speech


@pytest.mark.parametrize("end_id", sorted(END_OF_SPEECH_IDS))
async def test_every_end_of_speech_id_ends_the_phrase(end_id: int, caplog: pytest.LogCaptureFixture) -> None:
    """A model that ends speech with ``end_id`` after one frame: generation stops there, not at the cap."""
    model = make_frame_following(
        random_llama({**TINY_ORPHEUS_CONFIG, "tie_word_embeddings": False}), end_id=end_id
    )
    settings = OrpheusSettings(engine="transformers", device="cpu", max_phrase_tokens=700, max_sessions=2)
    engine = TransformersEngine(settings, preloaded=(model, byte_tokenizer(), random_snac(TINY_SNAC_CONFIG)))
    await engine.start()
    caplog.set_level(logging.INFO)
    try:
        chunks = [chunk async for chunk in engine.synthesize("One frame.", "tara", first_in_turn=True)]
    finally:
        await engine.close()
    assert len(np.concatenate(chunks)) == SAMPLES_PER_FRAME
    stops = [r.fields for r in caplog.records if r.getMessage() == "generation stopped"]  # type: ignore[attr-defined]
    # 7 audio ids and the end id; a normal end, not logged as a cancel.
    assert [(s["reason"], s["tokens"]) for s in stops] == [("end_of_speech", 8)]
    assert not [r for r in caplog.records if "dropped" in r.getMessage()]


@pytest.fixture(scope="module")
def ends_speech(
    tmp_path_factory: pytest.TempPathFactory, checkpoint: tuple[str, str]
) -> Iterator[ServiceProcess]:
    """A checkpoint that speaks one frame, then the model's own EOS (128009, which generate was told to ignore)."""
    model = save_orpheus(
        str(tmp_path_factory.mktemp("orpheus-eos") / "orpheus"), frame_following=True, end_id=END_OF_TEXT
    )
    yield from _serve((model, checkpoint[1]), "--max-phrase-tokens", "700")


async def test_phrases_that_end_are_finished_and_logged_as_ended(ends_speech: ServiceProcess) -> None:
    async with OrpheusStream(ends_speech.address) as stream:
        await stream.text(1, "First phrase. And a second one.")
        await stream.end_of_text(1)
        events = await stream.until_done(1)
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds.count("phrase_done") == 2 and kinds[-1] == "done"
    for index in (0, 1):
        assert sum(len(a.pcm) for a in _audio(events) if a.phrase_index == index) == 2 * SAMPLES_PER_FRAME
    for _ in range(50):  # the second stop is logged as the turn's last events go out
        stops = [json.loads(line) for line in _log_lines(ends_speech, "generation stopped")]
        if len(stops) >= 2:
            break
        await asyncio.sleep(0.1)
    assert [(s["reason"], s["tokens"]) for s in stops] == [("end_of_speech", 8)] * 2


# ------------------------------------------------------------- token budget


async def test_a_phrase_that_never_ends_speech_stops_at_its_own_token_budget(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A run that misses end-of-speech speaks for its phrase's budget, not the global cap (19.5 s)."""
    model = make_frame_following(random_llama({**TINY_ORPHEUS_CONFIG, "tie_word_embeddings": False}))
    settings = OrpheusSettings(engine="transformers", device="cpu", max_sessions=2)
    engine = TransformersEngine(settings, preloaded=(model, byte_tokenizer(), random_snac(TINY_SNAC_CONFIG)))
    await engine.start()
    caplog.set_level(logging.INFO)
    try:
        chunks = [chunk async for chunk in engine.synthesize("Hi.", "tara", first_in_turn=True)]
    finally:
        await engine.close()
    cap = phrase_token_cap(len("Hi."), settings.max_phrase_tokens)
    assert cap < settings.max_phrase_tokens // 10
    stops = [r.fields for r in caplog.records if r.getMessage() == "generation stopped"]  # type: ignore[attr-defined]
    assert [(s["reason"], s["tokens"]) for s in stops] == [("token_cap", cap)]
    assert len(np.concatenate(chunks)) == cap // 7 * SAMPLES_PER_FRAME
