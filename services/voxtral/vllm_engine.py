"""The ``vllm`` engine: Voxtral on vLLM's in-process async engine (production, GPU).

One ``AsyncLLM`` lives for the whole process, created in :meth:`VllmEngine.start`
on a thread of its own (:mod:`voxmesh.engine_loading`: the service answers
health checks with NOT_SERVING and honours SIGTERM while it loads), loading
the checkpoint in Mistral's own format (``params.json`` +
``consolidated.safetensors`` + ``tekken.json``, the layout of the hub's
``mistralai/Voxtral-*`` repositories) with ``tokenizer_mode=mistral``,
``config_format=mistral`` and ``load_format=mistral``.

Prompts are built with mistral-common (see :mod:`voxtral_prompt`) using vLLM's
own tokenizer (``AsyncLLM.get_tokenizer()``, a wrapper around mistral-common's
``MistralTokenizer`` read from the checkpoint's ``tekken.json``): a chat
request whose last user turn is text (``stream`` mode, typed turns) or audio
(``audio`` mode), or a transcription request (``[TRANSCRIBE]``). The encoded
request goes to vLLM as token ids plus the padded audio arrays that
mistral-common returned (``{"prompt_token_ids": ..., "multi_modal_data":
{"audio": [(array, 16000)]}}``): vLLM's Voxtral processor only checks that the
audio placeholders are there, the encoder computes the log-mel features itself.
At most one audio clip per prompt (``limit_mm_per_prompt={"audio": 1}``): only
the current user turn carries audio, history is text.

Each request has a unique id (``voxtral-<kind>-<uuid>``) and streams
``RequestOutputKind.DELTA`` outputs without detokenization: the V1 engine may
merge several steps into one output, so every id of every output goes to
:class:`TextDeltas`, which turns ids into text the moment a character is whole.
Continuous batching across sessions is vLLM's (``max_num_seqs`` = the
service's session limit). Cancelling or closing the consumer (barge-in,
client gone) aborts the request in vLLM, which frees its KV cache at once;
a request that finished is never aborted (vLLM's generator is read to its end).

Transcription (``stream``/``transcribe`` modes) runs on Voxtral Realtime
(``--realtime-model``, see :mod:`vllm_realtime`) when it is set, loads and
transcribes a silent probe utterance at start-up: a second ``AsyncLLM`` in
this process, one streaming-input request per utterance fed while the user
speaks, with partial transcripts as its tokens come. Otherwise it falls back
to the reply model's transcription request on the whole utterance at end of
turn (Voxtral Mini 3B cannot transcribe audio as it streams in, so no
partials). The log at start says which. An utterance whose live transcript
fails falls back the same way (see :mod:`realtime_fallback`).

Prompts longer than the model's context (``--max-model-len``) are refused,
never truncated: an utterance whose audio tokens do not fit fails its turn
with ``UtteranceTooLong``, before any encoder work.

``enable_chunked_prefill=False`` follows vLLM's own Voxtral example (vLLM
warns that the model does not "officially" support turning it off; an audio
prompt is then prefilled in one step, as the encoder output must be whole).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

from voxmesh import logs
from voxmesh.engine_info import EngineInfo
from voxmesh.engine_loading import start_async_llm
from voxmesh.errors import EngineNotInstalled, EngineUnavailable, InvalidArgument
from voxmesh.services.voxtral.engine import Delta, LiveTranscriber, Sampling
from voxmesh.services.voxtral.mistral_engine import MistralPromptEngine
from voxmesh.services.voxtral.word_confidence import HeldProbability
from voxmesh.startup_lock import gpu_startup_lock

if TYPE_CHECKING:
    from voxmesh.services.voxtral.settings import VoxtralSettings
    from voxmesh.services.voxtral.vllm_realtime import VllmRealtime

log = logging.getLogger(__name__)


def mistral_format_engine_args(settings: VoxtralSettings, model: str, **args: Any) -> Any:
    """``AsyncEngineArgs`` for a Voxtral checkpoint in Mistral's format (the hub's layout), plus ``args``."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    return AsyncEngineArgs(
        model=model,
        tokenizer_mode="mistral",
        config_format="mistral",
        load_format="mistral",
        dtype=settings.dtype,
        max_num_seqs=settings.max_sessions,
        disable_log_stats=True,
        **args,
    )


def sampled_probabilities(token_ids: list[int], logprobs: Any) -> list[float] | None:
    """P of each sampled token from vLLM's logprobs for them (one mapping per token,
    the sampled id among its keys); None when any is missing (no logprobs asked for).
    """
    if not logprobs or len(logprobs) != len(token_ids):
        return None
    out = []
    for token, at in zip(token_ids, logprobs, strict=True):
        entry = at.get(token) if at else None
        if entry is None:
            return None
        out.append(math.exp(entry.logprob))
    return out


def _vllm_client_error() -> type[BaseException] | tuple[()]:
    """The "bad request" error class of vLLM (``VLLMClientError``), where this vLLM has one."""
    try:
        from vllm.exceptions import VLLMClientError
    except ImportError:
        return ()
    return VLLMClientError  # type: ignore[no-any-return]


class _Prompt:
    """An encoded request: vLLM's prompt dict, its length and the reply cap that fits the context."""

    def __init__(self, prompt: dict[str, Any], prompt_tokens: int, max_tokens: int) -> None:
        self.prompt = prompt
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens


class VllmEngine(MistralPromptEngine):
    def __init__(self, settings: VoxtralSettings) -> None:
        try:
            import vllm  # noqa: F401
        except ImportError as exc:
            raise EngineNotInstalled(
                "engine vllm needs vLLM: install the `gpu` extra in its own environment "
                "(pip install 'voxmesh[gpu]'), or run --engine transformers (GPU or CPU) or --engine echo"
            ) from exc
        try:
            from mistral_common.protocol.transcription.request import TranscriptionRequest  # noqa: F401
            from mistral_common.tokens.tokenizers.audio import Audio  # noqa: F401
        except ImportError as exc:
            raise EngineNotInstalled(
                f"engine vllm needs mistral-common[audio] ({exc.name} is missing): "
                "pip install 'mistral-common[audio]==1.13.1'"
            ) from exc
        self.settings = settings
        self.llm: Any = None  # vllm.v1.engine.async_llm.AsyncLLM
        self.tokenizer: Any = None  # mistral-common MistralTokenizer (vLLM's own instance)
        self.context_tokens = settings.max_model_len
        self._audio_tokens_per_window = 0
        self._window_samples = 0
        self._eos_id = 0
        #: Voxtral Realtime for live transcripts; None: transcripts at end of turn.
        self.realtime: VllmRealtime | None = None

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(engine="vllm", model=self.settings.model, is_fallback=False, tool_calls="model")

    # -------------------------------------------------------------- loading

    def engine_args(self) -> Any:
        """VLLM's ``AsyncEngineArgs`` for the reply model."""
        settings = self.settings
        return mistral_format_engine_args(
            settings,
            settings.model,
            max_model_len=settings.max_model_len,
            gpu_memory_utilization=settings.gpu_memory_utilization,
            limit_mm_per_prompt={"audio": 1},
            enable_chunked_prefill=False,
            # Said, not assumed: a speculative reply dropped because the user spoke on is
            # asked again with the same instructions and history first (gateway.speculation).
            enable_prefix_caching=True,
        )

    async def start(self) -> None:
        # One engine at a time profiles memory on a shared card (vLLM issue #55827).
        async with gpu_startup_lock(self.settings.gpu_startup_lock, "voxtral"):
            await self._start()

    async def _start(self) -> None:
        log.info("loading Voxtral on vLLM", extra=logs.fields(model=self.settings.model))
        # Off the event loop: from_engine_args polls the engine core synchronously for the whole
        # load; its output handler task starts on this loop at the first request.
        self.llm = await start_async_llm("voxtral", self.engine_args())
        tokenizer = self.llm.get_tokenizer()
        mistral = getattr(tokenizer, "mistral", None)
        if mistral is None:
            raise ValueError(f"model: {self.settings.model} did not load a mistral tokenizer (tekken.json)")
        tekken = mistral.instruct_tokenizer.tokenizer
        audio = tekken.audio
        if audio is None or mistral.instruct_tokenizer.audio_encoder is None or audio.chunk_length_s is None:
            raise ValueError(f"model: the tokenizer of {self.settings.model} has no audio section")
        self.tokenizer = mistral
        self._window_samples = int(audio.chunk_length_s * audio.sampling_rate)
        self._audio_tokens_per_window = audio.num_audio_tokens(self._window_samples)
        self._eos_id = tekken.eos_id
        self.context_tokens = int(self.llm.model_config.max_model_len)
        log.info(
            "Voxtral ready",
            extra=logs.fields(
                context_tokens=self.context_tokens,
                audio_tokens_per_30s=self._audio_tokens_per_window,
                tokenizer=tekken.version.value,
            ),
        )
        self.realtime = await self._load_realtime_model(
            self.settings.realtime_model,
            self._start_realtime,
            lambda rt: {"delay_ms": rt.delay_ms},
            live=lambda rt: rt.transcriber("en"),
            unload=lambda rt: rt.close(),
        )

    async def _start_realtime(self) -> VllmRealtime:
        # Imported here: vllm_realtime builds its engine args with this module's helper.
        from voxmesh.services.voxtral.vllm_realtime import VllmRealtime

        realtime = VllmRealtime(self.settings)
        await realtime.start()
        return realtime

    async def close(self) -> None:
        if self.realtime is not None:
            await self.realtime.close()
            self.realtime = None
        if self.llm is not None:
            self.llm.shutdown()
            self.llm = None

    # ------------------------------------------------------------ interface

    def _live_transcriber(self, language: str) -> LiveTranscriber | None:
        return None if self.realtime is None else self.realtime.transcriber(language)

    # ------------------------------------------------------------- requests

    def _prompt(self, tokenized: Any, max_tokens: int, *, has_audio: bool) -> _Prompt:
        """VLLM's prompt for a mistral-common ``Tokenized``; refuses one that leaves no room to reply."""
        tokens = list(tokenized.tokens)
        room = self._room(tokens, has_audio=has_audio)
        prompt: dict[str, Any] = {"prompt_token_ids": tokens}
        if tokenized.audios:
            # Already padded to whole 30 s windows by mistral-common; one clip per prompt.
            prompt["multi_modal_data"] = {
                "audio": [(clip.audio_array, clip.sampling_rate) for clip in tokenized.audios]
            }
        return _Prompt(prompt, len(tokens), min(max_tokens, room))

    def _sampling_params(
        self, sampling: Sampling, max_tokens: int, *, token_probabilities: bool = False
    ) -> Any:
        """``token_probabilities``: each sampled token's logprob comes back (transcripts:
        their last word's confidence; ``logprobs=0`` asks for the sampled token's alone).
        """
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        kwargs: dict[str, Any] = {"temperature": sampling.temperature}
        if sampling.temperature > 0:
            kwargs["top_p"] = sampling.top_p
        if token_probabilities:
            kwargs["logprobs"] = 0
        return SamplingParams(
            max_tokens=max_tokens,
            stop_token_ids=[self._eos_id],
            output_kind=RequestOutputKind.DELTA,
            # Ids are decoded here (TextDeltas): vLLM's detokenizer would only be skipped.
            detokenize=False,
            **kwargs,
        )

    async def _stream(self, prepare: Any, sampling: Sampling, kind: str) -> AsyncGenerator[Delta, None]:
        """Deltas as vLLM samples; the last carries the totals. Closing it aborts the request."""
        from vllm.v1.engine.exceptions import EngineDeadError

        client_error = _vllm_client_error()
        if self.llm is None:
            raise EngineUnavailable("vllm engine is not running")
        llm = self.llm
        request_id = f"voxtral-{kind}-{uuid.uuid4().hex}"
        started = time.perf_counter()
        prompt_tokens = 0
        tokens = 0
        reason = "cancelled"
        finished = False
        submitted = False
        try:
            # Encoding (WAV round trip, padding to 30 s windows) is CPU work: off the event loop.
            prepared: _Prompt = await asyncio.to_thread(prepare)
            prompt_tokens = prepared.prompt_tokens
            params = self._sampling_params(
                sampling, prepared.max_tokens, token_probabilities=kind == "transcript"
            )
            deltas = self._text_deltas()
            probability = HeldProbability()
            finish_reason: str | None = None
            submitted = True
            last = ""
            async with contextlib.aclosing(llm.generate(prepared.prompt, params, request_id)) as outputs:
                # Read to the generator's own end, never `break`: closing vLLM's generator aborts
                # the request, even one that has finished (an extra engine round trip per reply).
                async for output in outputs:
                    completion = output.outputs[0] if output.outputs else None
                    if completion is not None:
                        new = list(completion.token_ids)
                        tokens += len(new)
                        probability.add(sampled_probabilities(new, completion.logprobs))
                        text = deltas.push(new) if new else ""
                        finish_reason = completion.finish_reason or finish_reason
                        if output.finished:
                            # Held back until vLLM's generator has returned: a consumer that
                            # closes us at this yield would abort a request that has ended.
                            last = text
                        elif text:
                            yield Delta(text, probability=probability.take())
                    finished = finished or output.finished
            if not finished:
                raise EngineUnavailable(f"vllm ended request {request_id} without finishing it")
            reason = "length" if finish_reason == "length" else "stop"
            calls = self._tool_calls(deltas, reason) if kind == "reply" else ()
            yield Delta(
                last + deltas.flush(),
                finish_reason="tool_calls" if calls else reason,
                prompt_tokens=prompt_tokens,
                generated_tokens=tokens,
                tool_calls=calls,
                probability=probability.take(),
            )
        except (asyncio.CancelledError, GeneratorExit):
            raise  # the consumer went away: reason stays "cancelled"
        except EngineDeadError as exc:
            reason = "failed"
            raise EngineUnavailable(f"the vLLM engine died: {exc}") from exc
        except client_error as exc:  # vLLM refused the request itself (validation, admission)
            reason = "failed"
            raise InvalidArgument("request", f"vLLM refused the request: {exc}") from exc
        except Exception:
            reason = "failed"
            raise
        finally:
            if submitted and not finished:
                # generate() aborts when it is closed or cancelled too; asking twice is harmless,
                # and this one also covers a consumer that stopped reading between outputs.
                with contextlib.suppress(Exception):
                    await asyncio.shield(llm.abort(request_id))
            log.info(
                "generation stopped",
                extra=logs.fields(
                    kind=kind,
                    reason=reason,
                    request_id=request_id,
                    prompt_tokens=prompt_tokens,
                    tokens=tokens,
                    seconds=round(time.perf_counter() - started, 3),
                ),
            )
