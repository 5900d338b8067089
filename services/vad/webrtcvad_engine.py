"""webrtcvad (the WebRTC GMM voice detector): 30 ms frames, ~5 µs each, no model file."""

from __future__ import annotations

import webrtcvad

from voxmesh.engine_info import EngineInfo
from voxmesh.services.vad.engine import SENSITIVITIES, FrameClassifier, VadEngine

#: webrtcvad's "aggressiveness" filters non-speech harder as it grows, so the
#: most sensitive setting is the least aggressive mode.
_MODE_FOR_SENSITIVITY = dict(zip(SENSITIVITIES, (3, 2, 1, 0), strict=True))
FRAME_MS = 30
#: webrtcvad calls the first 3-4 frames of sound a fresh detector hears speech,
#: whatever the sound (white noise from -60 to -40 dBFS, a recording's room at
#: -46 dBFS; 8-48 kHz, every mode) while its noise model settles. Left alone,
#: every session in a real room opened with a 120 ms "utterance": a speech
#: start the edges report (an OpenAI Realtime client stops its playback on it),
#: a paused greeting, an empty turn sent to voxtral. So the first frames of
#: sound (two: the first may be mostly the digital silence before it) are shown
#: to the detector this many times before it judges them: the model settles on
#: them, noise then reads as noise, and speech from the first sample is still
#: speech one 30 ms frame later (measured: tests/unit/test_webrtcvad_warm_up.py).
SETTLING_CALLS = 8
SETTLING_FRAMES = 2


class _Classifier(FrameClassifier):
    def __init__(self, sample_rate_hz: int, mode: int) -> None:
        self._vad = webrtcvad.Vad(mode)
        self._rate = sample_rate_hz
        self.frame_samples = sample_rate_hz * FRAME_MS // 1000
        self._unsettled = SETTLING_FRAMES

    def is_speech(self, frame: bytes) -> bool:
        # Digital silence settles nothing (a muted start, then the room).
        if self._unsettled and any(frame):
            self._unsettled -= 1
            for _ in range(SETTLING_CALLS):
                self._vad.is_speech(frame, self._rate)
        return bool(self._vad.is_speech(frame, self._rate))


class WebRtcVadEngine(VadEngine):
    sample_rates = (8_000, 16_000, 32_000, 48_000)

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(engine="webrtcvad")

    def classifier(self, sample_rate_hz: int, sensitivity: int) -> FrameClassifier:
        return _Classifier(sample_rate_hz, _MODE_FOR_SENSITIVITY[sensitivity])
