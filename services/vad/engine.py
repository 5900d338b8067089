"""The VAD engine interface and the factory that picks one from the settings.

An engine hands out one :class:`FrameClassifier` per stream (classifiers
may keep state between frames, e.g. silero's recurrent state); the
classifier says whether one fixed-size frame of PCM16 is speech. Framing,
pre-roll and hangover belong to :mod:`.segmenter`; engines never import gRPC.
"""

from __future__ import annotations

import abc

from voxmesh.engine_info import EngineInfo
from voxmesh.errors import InvalidArgument
from voxmesh.v1 import common_pb2

ENGINES = ("webrtcvad", "silero")

#: Sensitivity names, most conservative first (index = proto enum value - 1).
SENSITIVITIES = (
    common_pb2.VAD_SENSITIVITY_LOW,
    common_pb2.VAD_SENSITIVITY_MEDIUM,
    common_pb2.VAD_SENSITIVITY_HIGH,
    common_pb2.VAD_SENSITIVITY_VERY_HIGH,
)


class FrameClassifier(abc.ABC):
    """Speech or not, one frame at a time, for one stream."""

    #: Samples per frame at the stream's rate.
    frame_samples: int

    @abc.abstractmethod
    def is_speech(self, frame: bytes) -> bool:
        """``frame`` is exactly ``frame_samples`` PCM16 little-endian samples."""


class VadEngine(abc.ABC):
    #: Rates the engine accepts, in hertz.
    sample_rates: tuple[int, ...]

    @property
    @abc.abstractmethod
    def info(self) -> EngineInfo: ...

    @abc.abstractmethod
    def classifier(self, sample_rate_hz: int, sensitivity: int) -> FrameClassifier:
        """A fresh classifier; ``sensitivity`` is a VadSensitivity value other than UNSPECIFIED."""


def create_engine(name: str) -> VadEngine:
    if name == "webrtcvad":
        from voxmesh.services.vad.webrtcvad_engine import WebRtcVadEngine

        return WebRtcVadEngine()
    if name == "silero":
        from voxmesh.services.vad.silero_engine import SileroEngine

        return SileroEngine()
    raise InvalidArgument("engine", f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
