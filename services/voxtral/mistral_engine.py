"""What the model engines (transformers, vllm) share: Voxtral prompts built
with mistral-common, the context checks, transcription requests and the
whole-utterance transcriber.

A subclass loads the model and its mistral-common tokenizer (setting the
attributes below in ``start``) and supplies two things: ``_prompt`` (turn a
``Tokenized`` into its own request, after :meth:`_room` checked it fits) and
``_stream`` (run a request, yield :class:`Delta` s).
"""

from __future__ import annotations

import abc
import contextlib
import functools
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from voxmesh import logs
from voxmesh.audio import PIPELINE_SAMPLE_RATE_HZ
from voxmesh.errors import InvalidArgument, UtteranceTooLong
from voxmesh.services.voxtral.engine import Delta, LiveTranscriber, Message, ReplyEngine, Sampling
from voxmesh.services.voxtral.realtime_fallback import FallbackTranscriber, RealtimeProbeFailed, probe
from voxmesh.services.voxtral.realtime_transcriber import VOXTRAL_REALTIME_LANGUAGES
from voxmesh.services.voxtral.tools import ToolCallOut, Tools, split_tool_calls
from voxmesh.services.voxtral.voxtral_prompt import TextDeltas, chat_request, transcription_request
from voxmesh.services.voxtral.word_confidence import last_word_confidence

if TYPE_CHECKING:
    from voxmesh.services.voxtral.settings import VoxtralSettings

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Transcript length cap: speech runs at ~3 text tokens/s, so 8/s plus a margin never cuts one short.
TRANSCRIPT_TOKENS_PER_S = 8
TRANSCRIPT_MIN_TOKENS = 32
#: Prompt tokens a chat turn adds around a message ([INST]…[/INST], </s>), for the history budget.
MESSAGE_OVERHEAD_TOKENS = 2
#: Tokens around the audio of the smallest audio prompt: BOS, [INST], [BEGIN_AUDIO], [/INST], one reply token.
AUDIO_PROMPT_OVERHEAD_TOKENS = 5
#: Languages of Voxtral Mini 3B 2507 (and Small 24B 2507), from their model cards.
VOXTRAL_2507_LANGUAGES = frozenset({"en", "es", "fr", "pt", "hi", "de", "nl", "it"})


class FinishTimeTranscriber(LiveTranscriber):
    """Gathers the utterance; transcribes it at :meth:`finish` (no partials from Voxtral Mini 3B)."""

    def __init__(self, engine: MistralPromptEngine, language: str) -> None:
        self._engine = engine
        self._language = language
        self._pieces: list[np.ndarray] = []
        self._samples = 0

    async def feed(self, audio: np.ndarray) -> str | None:
        self._pieces.append(audio)
        self._samples += len(audio)
        # Refuse as soon as the utterance cannot fit, not after the user stops.
        self._engine.check_audio_fits(self._samples)
        return None

    async def finish(self) -> str:
        if not self._samples:
            return ""
        audio = np.concatenate(self._pieces)
        self._pieces = []
        text, self.last_word_confidence = await self._engine.transcribe(audio, self._language)
        return text

    def close(self) -> None:
        self._pieces = []


class MistralPromptEngine(ReplyEngine):
    """A Voxtral engine whose prompts are mistral-common requests."""

    settings: VoxtralSettings
    reply_languages = VOXTRAL_2507_LANGUAGES
    #: Voxtral Realtime, once loaded and probed; None: transcripts at end of turn.
    realtime: Any = None
    #: mistral-common's ``MistralTokenizer``; set by ``start``.
    tokenizer: Any = None
    #: Prompt + reply tokens the model accepts.
    context_tokens: int = 0
    #: Samples and audio tokens per encoder window (30 s, 375 + 1); 0 = no audio.
    _window_samples: int = 0
    _audio_tokens_per_window: int = 0

    def transcriber(self, language: str) -> LiveTranscriber:
        at_end = functools.partial(FinishTimeTranscriber, self, language)
        live = self._live_transcriber(language)
        return at_end() if live is None else FallbackTranscriber(live, at_end)

    def _live_transcriber(self, language: str) -> LiveTranscriber | None:
        """Voxtral Realtime's transcriber for one utterance; None without a realtime model."""
        return None

    def transcript_languages(self) -> frozenset[str]:
        return VOXTRAL_REALTIME_LANGUAGES if self.realtime is not None else self.reply_languages

    async def _load_realtime_model(
        self,
        path: str,
        load: Callable[[], Awaitable[_T]],
        describe: Callable[[_T], dict[str, object]],
        live: Callable[[_T], LiveTranscriber],
        unload: Callable[[_T], Awaitable[None]] | None = None,
    ) -> _T | None:
        """Voxtral Realtime from ``load()``, probed with ``live(model)``, or None; logs which
        transcriber stream mode will use (with ``describe(model)``'s fields once it loaded).

        A realtime model that is not set, does not load or fails its probe (a
        short silent utterance; ``unload`` then frees it) leaves stream mode
        working: it transcribes the whole utterance at end of turn, without partials.
        """
        if not path:
            log.info(
                "live transcripts off: no realtime model; stream mode transcribes at end of turn",
                extra=logs.fields(transcriber="finish"),
            )
            return None
        try:
            loaded = await load()
            try:
                await probe(live(loaded), self.settings.realtime_probe_timeout_s)
            except RealtimeProbeFailed:
                if unload is not None:
                    await unload(loaded)
                raise
        except Exception as exc:
            log.warning(
                "live transcripts off: realtime model %s not usable (%s: %s); "
                "stream mode transcribes at end of turn",
                path,
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
                extra=logs.fields(transcriber="finish", realtime_model=path),
            )
            return None
        log.info(
            "live transcripts on: Voxtral Realtime",
            extra=logs.fields(transcriber="realtime", realtime_model=path, **describe(loaded)),
        )
        return loaded

    def count_tokens(self, text: str) -> int:
        assert self.tokenizer is not None, "start() was not awaited"
        ids = self.tokenizer.instruct_tokenizer.tokenizer.encode(text, bos=False, eos=False)
        return len(ids) + MESSAGE_OVERHEAD_TOKENS

    async def generate(
        self, messages: list[Message], sampling: Sampling, tools: Tools | None = None
    ) -> AsyncIterator[Delta]:
        assert self.tokenizer is not None, "start() was not awaited"
        # The current turn's audio (the last user message: a reply going on from its
        # calls' results ends in tool messages, and reads the audio again).
        audio = next((m.audio for m in reversed(messages) if m.role == "user"), None)
        if audio is not None:
            self.check_audio_fits(len(audio))

        def prepare() -> Any:
            request = chat_request(messages, tools)
            tokenized = self.tokenizer.encode_chat_completion(request)
            return self._prompt(tokenized, sampling.max_tokens, has_audio=audio is not None)

        async for delta in self._stream(prepare, sampling, "reply"):
            yield delta

    async def transcribe(self, audio: np.ndarray, language: str) -> tuple[str, float | None]:
        """The whole utterance's transcript (greedy), with Voxtral's transcription request,
        and the model's confidence in its last word (None: no word, or not reported).
        """
        self.check_audio_fits(len(audio))
        cap = TRANSCRIPT_MIN_TOKENS + math.ceil(
            TRANSCRIPT_TOKENS_PER_S * len(audio) / PIPELINE_SAMPLE_RATE_HZ
        )

        def prepare() -> Any:
            tokenized = self.tokenizer.encode_transcription(transcription_request(audio, language))
            return self._prompt(tokenized, cap, has_audio=True)

        pieces: list[tuple[str, float | None]] = []
        stream = self._stream(prepare, Sampling(cap, 0.0, 1.0), "transcript")
        async with contextlib.aclosing(stream) as deltas:
            async for delta in deltas:
                pieces.append((delta.text, delta.probability))
        text = "".join(piece for piece, _ in pieces).strip()
        scored = [(piece, p) for piece, p in pieces if piece and p is not None]
        # An engine that does not report every piece's probability reports none.
        every_piece = all(p is not None for piece, p in pieces if piece)
        return text, last_word_confidence(scored) if every_piece else None

    def check_audio_fits(self, samples: int) -> None:
        """Refuse an utterance whose audio tokens alone leave no room in the context."""
        if not self._window_samples:
            return
        windows = max(1, math.ceil(samples / self._window_samples))
        needed = windows * self._audio_tokens_per_window + AUDIO_PROMPT_OVERHEAD_TOKENS
        if needed > self.context_tokens:
            seconds = samples / PIPELINE_SAMPLE_RATE_HZ
            fits = max(
                0, (self.context_tokens - AUDIO_PROMPT_OVERHEAD_TOKENS) // self._audio_tokens_per_window
            )
            raise UtteranceTooLong(
                "audio.pcm",
                f"a {seconds:.1f} s utterance is {windows} × 30 s audio windows = "
                f"{windows * self._audio_tokens_per_window} audio tokens, past the model's context of "
                f"{self.context_tokens} tokens (max_model_len); at most {fits * 30} s fits",
            )

    def _room(self, tokens: list[int], *, has_audio: bool) -> int:
        """Tokens left to reply after this prompt; refuses a prompt that leaves none."""
        room = self.context_tokens - len(tokens)
        if room >= 1:
            return room
        if has_audio:
            raise UtteranceTooLong(
                "audio.pcm",
                f"the prompt with this utterance is {len(tokens)} tokens, past the model's context of "
                f"{self.context_tokens} tokens (max_model_len)",
            )
        raise InvalidArgument(
            "text.text",
            f"the prompt is {len(tokens)} tokens, past the model's context of {self.context_tokens} tokens",
        )

    def _text_deltas(self) -> TextDeltas:
        """Ids → spoken text, with a reply's ``[TOOL_CALLS]`` and what follows kept aside."""
        raw = self.tokenizer.instruct_tokenizer.tokenizer
        try:
            marker: int | None = raw.get_special_token("[TOOL_CALLS]")
        except Exception:
            marker = None  # a tokenizer with no tool calls
        return TextDeltas(self._decode, marker)

    def _tool_calls(self, deltas: TextDeltas, reason: str) -> tuple[ToolCallOut, ...]:
        """The calls a finished reply wrote, parsed by mistral-common; none if it wrote none.

        A reply cut off inside a call (its token cap) or one the parser refuses
        makes no call: a call is sent whole or not at all.
        """
        if not deltas.tool_ids:
            return ()
        try:
            _, calls = split_tool_calls(deltas.tool_ids, self.tokenizer)
        except Exception as exc:
            log.warning(
                "tool call not parsed: dropped (%s: %s)",
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
                extra=logs.fields(finish_reason=reason, tokens=len(deltas.tool_ids)),
            )
            return ()
        return tuple(calls)

    def _decode(self, ids: list[int]) -> str:
        from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy

        return str(self.tokenizer.decode(ids, special_token_policy=SpecialTokenPolicy.IGNORE))

    @abc.abstractmethod
    def _prompt(self, tokenized: Any, max_tokens: int, *, has_audio: bool) -> Any:
        """The engine's request for a mistral-common ``Tokenized`` (runs on a worker thread)."""

    @abc.abstractmethod
    def _stream(
        self, prepare: Callable[[], Any], sampling: Sampling, kind: str
    ) -> AsyncGenerator[Delta, None]:
        """Run ``prepare()``'s request; yield deltas; stop the model when closed early."""
