"""The ``null`` engine: a fixed burst of silence per phrase, instantly.

For measuring the mesh's own overhead (gateway, gRPC hops, phrase cutting,
resampling) with the synthesis cost taken out. Not a voice: ``is_fallback``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np

from voxmesh.engine_info import EngineInfo
from voxmesh.services.orpheus.engine import SpeechEngine

#: Audio per phrase: 100 ms at 24 kHz.
BURST_SAMPLES = 2_400


class NullEngine(SpeechEngine):
    sample_rate_hz = 24_000

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(engine="null", model="", is_fallback=True)

    async def synthesize(
        self, text: str, voice: str, first_in_turn: bool = False
    ) -> AsyncIterator[np.ndarray]:
        yield np.zeros(BURST_SAMPLES, dtype=np.float32)
