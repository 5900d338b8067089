"""Known sentences spoken by espeak-ng: the speech the tests and benchmarks send.

Generated on the fly (a few ms a sentence), so no recorded audio is checked in.
"""

from __future__ import annotations

import numpy as np

from voxmesh.audio import PIPELINE_SAMPLE_RATE_HZ, resample
from voxmesh.espeak import ESPEAK_SAMPLE_RATE_HZ, Espeak


def speak(text: str, rate_hz: int = PIPELINE_SAMPLE_RATE_HZ, words_per_minute: int = 130) -> np.ndarray:
    """espeak-ng saying ``text``: float32 mono at ``rate_hz``."""
    audio = Espeak.instance().synthesize(text, words_per_minute=words_per_minute)
    return resample(audio, ESPEAK_SAMPLE_RATE_HZ, rate_hz)


def silence(seconds: float, rate_hz: int = PIPELINE_SAMPLE_RATE_HZ) -> np.ndarray:
    return np.zeros(int(seconds * rate_hz), dtype=np.float32)
