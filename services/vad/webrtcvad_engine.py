"""webrtcvad (the WebRTC GMM voice detector): 30 ms frames, ~5 µs each, no model file."""

from __future__ import annotations

import webrtcvad

from voxmesh.engine_info import EngineInfo
from voxmesh.services.vad.engine import SENSITIVITIES, FrameClassifier, VadEngine

#: webrtcvad's "aggressiveness" filters non-speech harder as it grows, so the
#: most sensitive setting is the least aggressive mode.
_MODE_FOR_SENSITIVITY = dict(zip(SENSITIVITIES, (3, 2, 1, 0), strict=True))
FRAME_MS = 30


class _Classifier(FrameClassifier):
    def __init__(self, sample_rate_hz: int, mode: int) -> None:
        self._vad = webrtcvad.Vad(mode)
        self._rate = sample_rate_hz
        self.frame_samples = sample_rate_hz * FRAME_MS // 1000

    def is_speech(self, frame: bytes) -> bool:
        return bool(self._vad.is_speech(frame, self._rate))


class WebRtcVadEngine(VadEngine):
    sample_rates = (8_000, 16_000, 32_000, 48_000)

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(engine="webrtcvad")

    def classifier(self, sample_rate_hz: int, sensitivity: int) -> FrameClassifier:
        return _Classifier(sample_rate_hz, _MODE_FOR_SENSITIVITY[sensitivity])
