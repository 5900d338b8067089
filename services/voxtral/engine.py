"""The reply engine interface and the factory that picks one from the settings.

An engine does two things, both streamed:

- :meth:`ReplyEngine.transcriber` hands out a :class:`LiveTranscriber` per
  utterance, fed audio while the user still speaks (``stream`` and
  ``transcribe`` modes), so only the tail is left to decode at end of turn;
- :meth:`ReplyEngine.generate` writes the reply to a conversation whose last
  user message is text (``stream`` mode) or audio (``audio`` mode), yielding
  text deltas the moment tokens come.

Turn bookkeeping, history and the wire protocol belong to the session;
engines never import gRPC. Cancelling the task that iterates ``generate``
(or closing the generator) must stop the model's work at once.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from voxmesh.engine_info import EngineInfo
from voxmesh.errors import InvalidArgument
from voxmesh.services.voxtral.tools import ToolCallOut, ToolOutcome, Tools

if TYPE_CHECKING:
    from voxmesh.services.voxtral.settings import VoxtralSettings

ENGINES = ("echo", "null", "transformers", "vllm")


@dataclass
class Message:
    role: Literal["system", "user", "assistant", "tool"]
    text: str = ""
    #: 16 kHz float32 mono; only on the current user turn in ``audio`` mode.
    audio: np.ndarray | None = None
    #: An assistant message's tool calls (its text, if any, came before them).
    tool_calls: tuple[ToolCallOut, ...] = ()
    #: A ``tool`` message: one call's result, following the assistant message that made the call.
    outcome: ToolOutcome | None = None


@dataclass(frozen=True)
class Sampling:
    max_tokens: int
    temperature: float
    top_p: float


@dataclass(frozen=True)
class Delta:
    """A piece of reply text; the last one of a reply carries the totals."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    generated_tokens: int = 0
    #: On the last delta of a reply that ends in calls (finish_reason "tool_calls"):
    #: the calls, parsed once the model finished writing them.
    tool_calls: tuple[ToolCallOut, ...] = ()
    #: P of the tokens behind ``text`` together, where the engine reports it
    #: (transcripts: services.voxtral.word_confidence); None: not known.
    probability: float | None = None


class LiveTranscriber(abc.ABC):
    """Transcribes one utterance as it streams in."""

    #: After :meth:`finish`: the transcriber's confidence (0-1) in the last word,
    #: where the engine knows it; None: not known (TranscriptUpdate.last_word_confidence).
    last_word_confidence: float | None = None

    @abc.abstractmethod
    async def feed(self, audio: np.ndarray) -> str | None:
        """Take 16 kHz float32 audio; return the whole transcript so far if it changed."""

    @abc.abstractmethod
    async def finish(self) -> str:
        """No more audio: the final transcript."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free the transcriber (also after a cancel)."""


class ReplyEngine(abc.ABC):
    """One instance per process, shared by every session."""

    #: Languages (ISO 639-1) the reply model understands and answers in.
    reply_languages: frozenset[str] = frozenset({"en"})

    def transcript_languages(self) -> frozenset[str]:
        """Languages :meth:`transcriber` hears (known once :meth:`start` has run)."""
        return self.reply_languages

    def languages(self, replies: bool) -> frozenset[str]:
        """What a session may speak: what the transcriber hears, and the reply model too if it replies."""
        heard = self.transcript_languages()
        return heard & self.reply_languages if replies else heard

    @property
    @abc.abstractmethod
    def info(self) -> EngineInfo: ...

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Load models; runs before the process reports SERVING."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Free models and background tasks."""

    @abc.abstractmethod
    def transcriber(self, language: str) -> LiveTranscriber: ...

    @abc.abstractmethod
    def generate(
        self, messages: list[Message], sampling: Sampling, tools: Tools | None = None
    ) -> AsyncIterator[Delta]:
        """Stream the reply; ``tools``: the session's, offered to the model (None or empty: no tools)."""

    @abc.abstractmethod
    def count_tokens(self, text: str) -> int:
        """Prompt cost of a text message, for the history budget."""


def create_engine(settings: VoxtralSettings) -> ReplyEngine:
    """The engine named by ``settings.engine``; model engines are imported lazily."""
    if settings.engine == "echo":
        from voxmesh.services.voxtral.echo_engine import EchoEngine

        return EchoEngine()
    if settings.engine == "null":
        from voxmesh.services.voxtral.null_engine import NullEngine

        return NullEngine()
    if settings.engine == "transformers":
        from voxmesh.services.voxtral.transformers_engine import TransformersEngine

        return TransformersEngine(settings)
    if settings.engine == "vllm":
        from voxmesh.services.voxtral.vllm_engine import VllmEngine

        return VllmEngine(settings)
    raise InvalidArgument("engine", f"unknown engine {settings.engine!r}; choose one of {', '.join(ENGINES)}")
