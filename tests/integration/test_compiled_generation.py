"""Both transformers engines on the CUDA path's thread and cache layout, run on CPU.

``--static-cache on`` on CPU takes the code path that ``auto`` takes on CUDA
(the generate thread, the one static cache, the warm-up in ``start``); only
the compile itself needs CUDA, and :class:`CompiledDecodeStep` stands in for
what it enforces: a CUDA graph replays only on the thread that recorded it,
and a step with new shapes is a recompile. Several sessions at once, as on a
shared card: every compiled step must run on one thread, and every shape a
live turn uses must have been compiled before the engine reported ready.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.integration.compiled_decode_step import CompiledDecodeStep
from voxmesh.audio import PIPELINE_SAMPLE_RATE_HZ
from voxmesh.services.orpheus.orpheus_tokens import END_OF_SPEECH, SAMPLES_PER_FRAME
from voxmesh.services.orpheus.random_checkpoint import (
    TINY_ORPHEUS_CONFIG,
    TINY_SNAC_CONFIG,
    byte_tokenizer,
    make_frame_following,
    random_llama,
    random_snac,
)
from voxmesh.services.orpheus.settings import OrpheusSettings
from voxmesh.services.orpheus.transformers_engine import TransformersEngine as OrpheusEngine
from voxmesh.services.voxtral.engine import Message, Sampling
from voxmesh.services.voxtral.random_checkpoint import save_voxtral
from voxmesh.services.voxtral.settings import VoxtralSettings
from voxmesh.services.voxtral.transformers_engine import TransformersEngine as VoxtralEngine

SESSIONS = 4


def assert_compiled_path(step: CompiledDecodeStep) -> None:
    assert step.steps_before_serving > 0, "nothing was compiled before the engine reported ready"
    assert step.live_steps > 0 and step.uncompiled_decode_steps == 0
    assert len(step.threads) == 1, f"compiled steps ran on {sorted(step.threads)}"
    assert step.live_recompiles == [], "a live turn compiled a new shape"


async def test_orpheus_sessions_share_one_generate_thread_and_warmed_shapes() -> None:
    # One frame then END_OF_SPEECH per phrase: short, deterministic phrases.
    model = make_frame_following(
        random_llama({**TINY_ORPHEUS_CONFIG, "tie_word_embeddings": False}), end_id=END_OF_SPEECH
    )
    step = CompiledDecodeStep(model)
    settings = OrpheusSettings(
        engine="transformers", device="cpu", static_cache="on", max_sessions=SESSIONS, max_phrase_chars=64
    )
    engine = OrpheusEngine(settings, preloaded=(model, byte_tokenizer(), random_snac(TINY_SNAC_CONFIG)))
    await engine.start()
    step.serving()
    try:

        async def session(text: str) -> int:
            return sum(len(c) for c in [c async for c in engine.synthesize(text, "tara", first_in_turn=True)])

        # Phrases of different lengths: different prompt shapes, one compiled step.
        texts = ["Hi.", "How are you today?", "A somewhat longer phrase, with a clause.", "Yes."]
        samples = await asyncio.gather(*(session(t) for t in texts), session("And again."))
    finally:
        await engine.close()
    assert samples == [SAMPLES_PER_FRAME] * (len(texts) + 1)
    assert_compiled_path(step)


@pytest.fixture(scope="module")
def voxtral_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    return save_voxtral(str(tmp_path_factory.mktemp("voxtral") / "tiny"))


async def test_voxtral_replies_and_transcripts_share_one_generate_thread_and_warmed_shapes(
    voxtral_checkpoint: str,
) -> None:
    from transformers import AutoProcessor, VoxtralForConditionalGeneration

    model = VoxtralForConditionalGeneration.from_pretrained(voxtral_checkpoint).eval()
    step = CompiledDecodeStep(model)
    settings = VoxtralSettings(
        engine="transformers",
        model=voxtral_checkpoint,
        device="cpu",
        dtype="float32",
        static_cache="on",
        realtime_model="",
        max_sessions=SESSIONS,
        max_model_len=900,
    )
    engine = VoxtralEngine(settings, preloaded=(model, AutoProcessor.from_pretrained(voxtral_checkpoint)))
    await engine.start()
    step.serving()
    rng = np.random.default_rng(0)
    try:

        async def reply(text: str, audio: np.ndarray | None = None) -> int:
            messages = [Message(role="user", text=text, audio=audio)]
            deltas = [d async for d in engine.generate(messages, Sampling(12, 1.0, 1.0))]
            return deltas[-1].generated_tokens or 0

        async def transcript(seconds: float) -> str:
            audio = 0.1 * rng.standard_normal(int(seconds * PIPELINE_SAMPLE_RATE_HZ)).astype(np.float32)
            text, _ = await engine.transcribe(audio, "en")
            return text

        # An audio-mode turn's reply and its transcript at once (the case that
        # took a second thread), beside typed turns of other sessions.
        speech = 0.1 * rng.standard_normal(PIPELINE_SAMPLE_RATE_HZ).astype(np.float32)
        results = await asyncio.gather(
            reply("", speech), transcript(1.0), reply("good morning"), reply("and then?"), transcript(2.5)
        )
    finally:
        await engine.close()
    replies = [results[0], results[2], results[3]]
    assert all(isinstance(tokens, int) and tokens > 0 for tokens in replies)
    assert_compiled_path(step)
