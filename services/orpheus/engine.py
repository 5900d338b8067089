"""The speech engine interface and the factory that picks one from the settings.

An engine turns one phrase into audio: float32 mono chunks at its native
rate, yielded as they are produced so the first chunk can go out before the
phrase is finished. Resampling to the session's rate, phrase cutting and the
wire protocol belong to the servicer; engines never import gRPC.

Cancelling the task that iterates :meth:`SpeechEngine.synthesize` (or
closing the generator) must stop the work at once: engines catch
``CancelledError``/``GeneratorExit``, abort their model request and re-raise.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import numpy as np

from voxmesh.engine_info import EngineInfo
from voxmesh.errors import InvalidArgument

if TYPE_CHECKING:
    from voxmesh.services.orpheus.settings import OrpheusSettings

ENGINES = ("espeak", "transformers", "vllm", "null")


class SpeechEngine(abc.ABC):
    """Synthesises phrases; one instance per process, shared by every session."""

    #: Rate of the chunks :meth:`synthesize` yields, in hertz.
    sample_rate_hz: int

    @property
    @abc.abstractmethod
    def info(self) -> EngineInfo:
        """What the engine says about itself (sent first on every stream)."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Load models; runs before the process reports SERVING."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Free models and background tasks."""

    @abc.abstractmethod
    def synthesize(self, text: str, voice: str, first_in_turn: bool = False) -> AsyncIterator[np.ndarray]:
        """Speak one phrase with a voice (already checked); yield float32 chunks.

        ``first_in_turn``: the turn's first phrase, whose first audio the user
        is waiting for in silence; engines that share a model across sessions
        serve it ahead of phrases whose turn is already playing.
        """


def create_engine(settings: OrpheusSettings) -> SpeechEngine:
    """The engine named by ``settings.engine``; model engines are imported lazily."""
    name = settings.engine
    if name == "espeak":
        from voxmesh.services.orpheus.espeak_engine import EspeakEngine

        return EspeakEngine()
    if name == "null":
        from voxmesh.services.orpheus.null_engine import NullEngine

        return NullEngine()
    if name == "transformers":
        from voxmesh.services.orpheus.transformers_engine import TransformersEngine

        return TransformersEngine(settings)
    if name == "vllm":
        from voxmesh.services.orpheus.vllm_engine import VllmEngine

        return VllmEngine(settings)
    raise InvalidArgument("engine", f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
