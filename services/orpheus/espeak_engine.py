"""The ``espeak`` engine: espeak-ng's formant voice, the CPU fallback.

It is a stand-in, not Orpheus (``is_fallback``): each Orpheus voice name maps
to an espeak-ng English variant of the same gender, and the emotive tags are
removed because espeak-ng would read ``<laugh>`` aloud rather than laugh.
A phrase renders in a few milliseconds, so it is synthesised whole in a
thread and then streamed in 100 ms chunks, like a model's output would be.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np

from voxmesh.engine_info import EngineInfo
from voxmesh.espeak import ESPEAK_SAMPLE_RATE_HZ, Espeak
from voxmesh.services.orpheus.engine import SpeechEngine
from voxmesh.services.orpheus.voices import strip_tags

#: Orpheus voice → espeak-ng voice with variant (f* female, m* male).
ESPEAK_VOICES: dict[str, str] = {
    "tara": "en-us+f3",
    "leah": "en-us+f2",
    "jess": "en-us+f4",
    "mia": "en-us+f1",
    "zoe": "en-us+f5",
    "leo": "en-us+m3",
    "dan": "en-us+m1",
    "zac": "en-us+m2",
}

_CHUNK_SAMPLES = ESPEAK_SAMPLE_RATE_HZ // 10


class EspeakEngine(SpeechEngine):
    sample_rate_hz = ESPEAK_SAMPLE_RATE_HZ

    def __init__(self) -> None:
        self._espeak: Espeak | None = None

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(engine="espeak", model="espeak-ng", is_fallback=True)

    async def start(self) -> None:
        self._espeak = await asyncio.to_thread(Espeak.instance)

    async def synthesize(
        self, text: str, voice: str, first_in_turn: bool = False
    ) -> AsyncIterator[np.ndarray]:
        assert self._espeak is not None, "start() was not awaited"
        spoken = strip_tags(text)
        if not spoken:
            return
        audio = await asyncio.to_thread(self._espeak.synthesize, spoken, ESPEAK_VOICES[voice])
        for start in range(0, len(audio), _CHUNK_SAMPLES):
            yield audio[start : start + _CHUNK_SAMPLES]
