"""The ``transformers`` engine: Voxtral (``VoxtralForConditionalGeneration``) on CUDA or CPU.

Prompts are built with mistral-common from the checkpoint's ``tekken.json``
(see :mod:`voxtral_prompt`): a chat request whose last user turn is text
(``stream`` mode, typed turns) or audio (``audio`` mode), or a transcription
request (``[TRANSCRIBE]``). mistral-common pads each clip to whole 30 s
windows (375 audio tokens each); the Whisper feature extractor turns the
padded audio into one log-mel window per 30 s, which the model's encoder
and projector turn into the audio tokens' embeddings.

Each request is one ``generate`` call on a worker thread. A streamer hands
every sampled id to the event loop, where :class:`TextDeltas` turns ids into
text deltas at once (no waiting for whole words). Closing or cancelling the
consumer sets a flag that a stopping criterion checks after every token, so
generation stops within one token and its KV cache is freed.

Transcription (``stream``/``transcribe`` modes) runs on Voxtral Realtime
(``--realtime-model``, see :mod:`realtime_transcriber`) when it is set and
loads: one streaming ``generate`` per utterance, fed while the user speaks,
with partial transcripts as its tokens come. Otherwise (no realtime model,
or it failed to load) it falls back to the reply model's transcription
request on the whole utterance at end of turn: Voxtral Mini 3B cannot
transcribe audio as it streams in, so there are no partials. The log at
start says which. A realtime model that fails a silent probe utterance at
start-up is dropped the same way, and an utterance whose live transcript
fails is transcribed at its end (see :mod:`realtime_fallback`).

On CUDA a static KV cache (``--static-cache``, on by default there) lets
transformers compile the decode step (``torch.compile`` + CUDA graphs): per-token
latency drops. CUDA-graph trees are bound to the thread that recorded them, so
with a static cache every request (reply and transcript alike) runs on one
generate thread, taking turns on the model and on one cache sized once for the
context; a text and an audio request are run in :meth:`TransformersEngine.start`
so the compile and the graph recording happen before the service reports
SERVING (see :mod:`voxmesh.generate_worker`). Without it requests run
concurrently, each with its own dynamic cache. Batching across sessions is the
``vllm`` engine's job.

Prompts longer than the model's context (``--max-model-len``, capped by the
model's position embeddings) are refused, never truncated: an utterance
whose audio tokens do not fit fails its turn with ``UtteranceTooLong``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from voxmesh import logs
from voxmesh.audio import PIPELINE_SAMPLE_RATE_HZ
from voxmesh.engine_info import EngineInfo
from voxmesh.errors import EngineNotInstalled
from voxmesh.generate_worker import WARM_UP_TOKENS, GenerateWorker
from voxmesh.services.voxtral.engine import Delta, LiveTranscriber, Message, Sampling
from voxmesh.services.voxtral.mistral_engine import MistralPromptEngine
from voxmesh.services.voxtral.realtime_transcriber import RealtimeModel, RealtimeTranscriber, check_delay
from voxmesh.services.voxtral.voxtral_prompt import chat_request, transcription_request
from voxmesh.services.voxtral.word_confidence import HeldProbability
from voxmesh.torch_generation import (
    ChosenTokenProbabilities,
    IdStreamer,
    StopFlag,
    pick_device,
    pick_dtype,
    use_static_cache,
)

if TYPE_CHECKING:
    import torch

    from voxmesh.services.voxtral.settings import VoxtralSettings

log = logging.getLogger(__name__)


class _Prepared:
    """A tokenized request ready for ``generate``."""

    def __init__(self, tokens: list[int], features: torch.Tensor | None, max_new_tokens: int) -> None:
        self.tokens = tokens
        self.features = features
        self.max_new_tokens = max_new_tokens


class TransformersEngine(MistralPromptEngine):
    def __init__(self, settings: VoxtralSettings, preloaded: tuple[Any, Any] | None = None) -> None:
        """``preloaded``: (model, processor) already on the device (benchmarks), else loaded from settings."""
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
            from mistral_common.protocol.instruct.request import ChatCompletionRequest  # noqa: F401
        except ImportError as exc:
            raise EngineNotInstalled(
                f"engine transformers needs torch, transformers and mistral-common[audio] ({exc.name} is "
                "missing): install the `models` extra (pip install 'voxmesh[models]') or run --engine echo"
            ) from exc
        self.settings = settings
        self._preloaded = preloaded
        self.device = pick_device(settings.device)
        self.dtype = pick_dtype(settings.dtype, self.device)
        self.model: Any = None
        self.processor: Any = None
        self.tokenizer: Any = None  # mistral-common MistralTokenizer
        self.context_tokens = settings.max_model_len
        self._mel_frames = 0
        self._audio_tokens_per_window = 0
        self._window_samples = 0
        self._eos_id = 0
        self.static_cache = use_static_cache(settings.static_cache, self.device)
        self.worker = GenerateWorker(self.static_cache, settings.max_sessions, "voxtral-generate")
        #: Voxtral Realtime for live transcripts; None: transcripts at end of turn.
        self.realtime: RealtimeModel | None = None
        if settings.realtime_model:
            check_delay(settings.realtime_delay_ms)
        # One thread per utterance being transcribed, held while its audio streams in.
        self._realtime_executor = ThreadPoolExecutor(
            settings.max_sessions, thread_name_prefix="voxtral-realtime"
        )

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(
            engine="transformers", model=self.settings.model, is_fallback=False, tool_calls="model"
        )

    # -------------------------------------------------------------- loading

    async def start(self) -> None:
        await asyncio.to_thread(self._load)
        # Every request fits the context (its reply is capped by the room
        # left), so one cache of that size serves them all.
        self.worker.size_cache(self.model, self.context_tokens)
        await self.worker.warm_up(
            [lambda: self._warm_up(self._warm_up_text), lambda: self._warm_up(self._warm_up_audio)],
            self.settings.model,
        )
        self.realtime = await self._load_realtime_model(
            self.settings.realtime_model,
            lambda: asyncio.to_thread(
                RealtimeModel.load,
                self.settings.realtime_model,
                self.settings.realtime_delay_ms,
                self.device,
                self.dtype,
            ),
            lambda rt: {"delay_ms": rt.delay_ms, "delay_tokens": rt.num_delay_tokens},
            live=lambda rt: RealtimeTranscriber(rt, self._realtime_executor, "en"),
        )

    def _load(self) -> None:
        from transformers import AutoProcessor, VoxtralForConditionalGeneration

        if self._preloaded is not None:
            model, processor = self._preloaded
        else:
            log.info(
                "loading Voxtral",
                extra=logs.fields(model=self.settings.model, device=str(self.device), dtype=str(self.dtype)),
            )
            processor = AutoProcessor.from_pretrained(self.settings.model)
            model = VoxtralForConditionalGeneration.from_pretrained(self.settings.model, dtype=self.dtype)
            model = cast(Any, model).to(self.device).eval()
        tokenizer = processor.tokenizer.tokenizer
        tekken = tokenizer.instruct_tokenizer.tokenizer
        audio = tekken.audio
        if audio is None or tokenizer.instruct_tokenizer.audio_encoder is None:
            raise ValueError(f"model: the tokenizer of {self.settings.model} has no audio section")
        audio_id = tekken.get_special_token("[AUDIO]")
        if model.config.audio_token_id != audio_id:
            raise ValueError(
                f"model: config.audio_token_id {model.config.audio_token_id} is not the tokenizer's "
                f"[AUDIO] id {audio_id}"
            )
        mel_frames = 2 * model.config.audio_config.max_source_positions
        feature_extractor = processor.feature_extractor
        if feature_extractor.nb_max_frames != mel_frames or audio.chunk_length_s is None:
            raise ValueError(
                f"model: the encoder takes {mel_frames} mel frames per window, the feature extractor "
                f"makes {feature_extractor.nb_max_frames} (chunk_length_s {audio.chunk_length_s})"
            )
        self.model, self.processor, self.tokenizer = model, processor, tokenizer
        self._mel_frames = mel_frames
        self._window_samples = int(audio.chunk_length_s * audio.sampling_rate)
        self._audio_tokens_per_window = audio.num_audio_tokens(self._window_samples)
        self._eos_id = tokenizer.instruct_tokenizer.tokenizer.eos_id
        self.context_tokens = min(
            self.settings.max_model_len, model.config.text_config.max_position_embeddings
        )
        log.info(
            "Voxtral ready",
            extra=logs.fields(
                context_tokens=self.context_tokens,
                audio_tokens_per_30s=self._audio_tokens_per_window,
                tokenizer=tekken.version.value,
            ),
        )

    def _warm_up_text(self) -> _Prepared:
        request = chat_request([Message(role="user", text="Hello.")])
        return self._prompt(self.tokenizer.encode_chat_completion(request), WARM_UP_TOKENS, has_audio=False)

    def _warm_up_audio(self) -> _Prepared:
        silence = np.zeros(PIPELINE_SAMPLE_RATE_HZ, np.float32)
        request = transcription_request(silence, "en")
        return self._prompt(self.tokenizer.encode_transcription(request), WARM_UP_TOKENS, has_audio=True)

    def _warm_up(self, prepare: Any) -> None:
        """One request through the compiled path.

        The decode step is the same for text and audio prompts; both are run
        so that no guard on what the prefill leaves behind recompiles in a turn.
        """
        self._run_generate(
            prepare(),
            Sampling(WARM_UP_TOKENS, 0.0, 1.0),
            IdStreamer(lambda new: None),
            threading.Event(),
            min_new_tokens=WARM_UP_TOKENS,
        )

    async def close(self) -> None:
        self.worker.shutdown()
        self._realtime_executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------ interface

    def _live_transcriber(self, language: str) -> LiveTranscriber | None:
        if self.realtime is None:
            return None
        return RealtimeTranscriber(self.realtime, self._realtime_executor, language)

    # ------------------------------------------------------------- requests

    def _prompt(self, tokenized: Any, max_tokens: int, *, has_audio: bool) -> _Prepared:
        """Check the prompt fits the context; mel features for its audio (on this worker thread)."""
        import torch

        tokens = list(tokenized.tokens)
        room = self._room(tokens, has_audio=has_audio)
        features = None
        if tokenized.audios:
            windows = []
            for clip in tokenized.audios:
                mel = self.processor.feature_extractor(
                    clip.audio_array,
                    sampling_rate=PIPELINE_SAMPLE_RATE_HZ,
                    padding=True,
                    truncation=False,
                    pad_to_multiple_of=self._window_samples,
                    return_tensors="pt",
                )["input_features"]
                # (1, mel bins, n × frames) → (n, mel bins, frames): one row per 30 s window.
                windows.append(mel.reshape(mel.shape[1], -1, self._mel_frames).transpose(0, 1))
            features = torch.cat(windows).to(self.device, self.dtype)
        return _Prepared(tokens, features, min(max_tokens, room))

    async def _stream(self, prepare: Any, sampling: Sampling, kind: str) -> AsyncGenerator[Delta, None]:
        """Deltas as ``generate`` samples; the last carries the totals. Closing it stops generation."""
        loop = asyncio.get_running_loop()
        # Unbounded in form, bounded in fact: at most max_new_tokens entries.
        queue: asyncio.Queue[tuple[list[int], list[float] | None] | None] = asyncio.Queue()
        stop = threading.Event()
        shape: dict[str, int] = {}
        # A transcript's tokens carry the probability they were picked at (its last word's confidence).
        chosen = ChosenTokenProbabilities() if kind == "transcript" else None

        def on_ids(new: list[int]) -> None:
            # On the generate thread, after the step's logits processors: its probabilities are in.
            before = shape.get("sampled", 0)
            shape["sampled"] = before + len(new)
            probabilities = chosen.values[before : before + len(new)] if chosen is not None else None
            loop.call_soon_threadsafe(queue.put_nowait, (new, probabilities))

        def run() -> None:
            try:
                prepared = prepare()
                shape.update(prompt=len(prepared.tokens), cap=prepared.max_new_tokens)
                extra: dict[str, Any] = {}
                if chosen is not None:
                    from transformers import LogitsProcessorList

                    extra["logits_processor"] = LogitsProcessorList([chosen])
                self._run_generate(prepared, sampling, IdStreamer(on_ids), stop, **extra)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        started = time.perf_counter()
        future = self.worker.submit(run)
        deltas = self._text_deltas()
        tokens = 0
        last_id = -1
        reason = "cancelled"
        probability = HeldProbability()
        try:
            while (step := await queue.get()) is not None:
                new, probabilities = step
                tokens += len(new)
                last_id = new[-1]
                probability.add(probabilities)
                text = deltas.push(new)
                if text:
                    yield Delta(text, probability=probability.take())
            await future  # raises what prepare or generate raised
            reason = "stop" if last_id == self._eos_id or tokens < shape["cap"] else "length"
            calls = self._tool_calls(deltas, reason) if kind == "reply" else ()
            yield Delta(
                deltas.flush(),
                finish_reason="tool_calls" if calls else reason,
                prompt_tokens=shape["prompt"],
                generated_tokens=tokens,
                tool_calls=calls,
                probability=probability.take(),
            )
        except (asyncio.CancelledError, GeneratorExit):
            raise  # the consumer went away: reason stays "cancelled"
        except Exception:
            reason = "failed"
            raise
        finally:
            stop.set()
            if not future.done():
                # Wait for generate to see the flag (one token), so the thread
                # and its KV cache are free when the turn ends.
                with contextlib.suppress(Exception):
                    await asyncio.shield(future)
            log.info(
                "generation stopped",
                extra=logs.fields(
                    kind=kind,
                    reason=reason,
                    prompt_tokens=shape.get("prompt", 0),
                    # Sampled by the model, including any not yet read when it was cancelled.
                    tokens=shape.get("sampled", 0),
                    seconds=round(time.perf_counter() - started, 3),
                ),
            )

    def _run_generate(
        self, prepared: _Prepared, sampling: Sampling, streamer: IdStreamer, stop: Any, **extra: Any
    ) -> None:
        """One ``generate`` call; on the worker thread (with a static cache, the only one)."""
        import torch
        from transformers import StoppingCriteriaList

        input_ids = torch.tensor([prepared.tokens], device=self.device)
        kwargs: dict[str, Any] = {}
        if prepared.features is not None:
            kwargs["input_features"] = prepared.features
        if sampling.temperature > 0:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            if stop.is_set():
                return
            self.model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=prepared.max_new_tokens,
                eos_token_id=self._eos_id,
                pad_token_id=self._eos_id,
                stopping_criteria=StoppingCriteriaList([StopFlag(stop)]),
                streamer=streamer,
                **self.worker.cache_args(),
                **kwargs,
                **extra,
            )
