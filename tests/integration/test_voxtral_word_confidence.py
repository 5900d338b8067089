"""The transcript's last word comes with the probability the model picked it at (transformers engine).

A random tiny Voxtral transcribes noise greedily; the engine's confidence in
the last word must be what the model's own scores say: the same greedy
generation run again with ``output_scores`` gives each token's probability,
and the last word's tokens together must match.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from voxmesh.audio import PIPELINE_SAMPLE_RATE_HZ
from voxmesh.services.voxtral.mistral_engine import TRANSCRIPT_MIN_TOKENS, TRANSCRIPT_TOKENS_PER_S
from voxmesh.services.voxtral.random_checkpoint import save_voxtral
from voxmesh.services.voxtral.settings import VoxtralSettings
from voxmesh.services.voxtral.transformers_engine import TransformersEngine
from voxmesh.services.voxtral.voxtral_prompt import transcription_request
from voxmesh.services.voxtral.word_confidence import last_word_confidence


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    return save_voxtral(str(tmp_path_factory.mktemp("voxtral") / "tiny"))


async def test_the_last_words_confidence_is_the_models_probability_for_its_tokens(checkpoint: str) -> None:
    import torch
    from transformers import AutoProcessor, VoxtralForConditionalGeneration

    model = VoxtralForConditionalGeneration.from_pretrained(checkpoint).eval()
    settings = VoxtralSettings(
        engine="transformers",
        model=checkpoint,
        device="cpu",
        dtype="float32",
        realtime_model="",
        max_model_len=900,
    )
    engine = TransformersEngine(settings, preloaded=(model, AutoProcessor.from_pretrained(checkpoint)))
    await engine.start()
    try:
        audio = 0.1 * np.random.default_rng(3).standard_normal(PIPELINE_SAMPLE_RATE_HZ).astype(np.float32)
        text, confidence = await engine.transcribe(audio, "en")

        # The same greedy generation, scored by the model itself.
        cap = TRANSCRIPT_MIN_TOKENS + math.ceil(
            TRANSCRIPT_TOKENS_PER_S * audio.size / PIPELINE_SAMPLE_RATE_HZ
        )
        tokenized = engine.tokenizer.encode_transcription(transcription_request(audio, "en"))
        prepared = engine._prompt(tokenized, cap, has_audio=True)
        with torch.inference_mode():
            out = model.generate(
                torch.tensor([prepared.tokens]),
                input_features=prepared.features,
                max_new_tokens=prepared.max_new_tokens,
                do_sample=False,
                eos_token_id=engine._eos_id,
                pad_token_id=engine._eos_id,
                output_scores=True,
                return_dict_in_generate=True,
            )
        ids = out.sequences[0, len(prepared.tokens) :].tolist()
        probabilities = [float(torch.softmax(s[0], -1)[t]) for s, t in zip(out.scores, ids, strict=True)]
        # Pieces of text as the engine cuts them (a character split over byte tokens is one piece).
        deltas, pieces, held = engine._text_deltas(), [], 1.0
        for token, probability in zip(ids, probabilities, strict=True):
            held *= probability
            if piece := deltas.push([token]):
                pieces.append((piece, held))
                held = 1.0
    finally:
        await engine.close()

    assert text == "".join(piece for piece, _ in pieces).strip()
    # The random model says something with a word in it, so there is a last word to be sure of.
    assert any(ch.isalnum() for ch in text), text
    expected = last_word_confidence(pieces)
    assert confidence is not None and expected is not None
    assert 0.0 < confidence <= 1.0
    assert math.isclose(confidence, expected, rel_tol=1e-4), (confidence, expected, pieces[-4:])
