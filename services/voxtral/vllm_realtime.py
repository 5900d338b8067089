"""Live transcripts on vLLM: Voxtral Realtime, one streaming-input request per utterance.

vLLM serves Voxtral Mini 4B Realtime in-process by feeding ``AsyncLLM.generate``
an async generator of :class:`StreamingInput` instead of a prompt: the
request (and its KV cache) stays alive while audio streams in, each chunk
extends it, and the model samples one text token per 80 ms of audio. The
chunking is the model's own (``VoxtralRealtimeGeneration.buffer_realtime_audio``:
the streaming prompt, the left/right pad silence, the encoder's look-back
and look-ahead), fed with our audio queue and with every sampled token, which
goes back into the next chunk's prompt. This is what vLLM's ``/v1/realtime``
server does per WebSocket; ``StreamingInput``, ``parse_model_prompt``, the
renderer and ``buffer_realtime_audio`` are internal APIs, hence the pinned
vLLM. All of them are looked up in :meth:`VllmRealtime.start`, and the
engine runs one silent utterance through them before the process reports
SERVING (see :mod:`realtime_fallback`): a vLLM that moved one turns live
transcripts off at start-up, in one log line, instead of failing every turn.

One :class:`VllmRealtime` (one ``AsyncLLM``, its own engine process and
``--realtime-gpu-memory-utilization`` share) per voxtral process, beside the
reply model's; one :class:`VllmRealtimeTranscriber` per utterance. The delay
is the checkpoint's (its ``tekken.json``): vLLM builds the model's time
conditioning from it at load, so ``--realtime-delay-ms`` cannot change it
and a different value is reported at start.

Closing the transcriber (barge-in, client gone, a turn that fails) cancels
the request's task and aborts it in vLLM, which frees its KV cache and its
encoder-cache entries; the next utterance starts a fresh request.
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

import numpy as np

from voxmesh import logs
from voxmesh.audio import PIPELINE_SAMPLE_RATE_HZ
from voxmesh.engine_loading import start_async_llm
from voxmesh.errors import EngineUnavailable
from voxmesh.services.voxtral.realtime_transcriber import BackgroundTranscriber, decode_transcript
from voxmesh.services.voxtral.vllm_engine import mistral_format_engine_args

if TYPE_CHECKING:
    from voxmesh.services.voxtral.settings import VoxtralSettings

log = logging.getLogger(__name__)

#: Tokens past the utterance's own in the realtime context: BOS, the left pad (32 tokens
#: in the released tokenizer), the delay and the right pad that flushes it.
STREAM_OVERHEAD_TOKENS = 96


class VllmRealtime:
    """Voxtral Realtime on its own ``AsyncLLM``: what every utterance's stream needs."""

    def __init__(self, settings: VoxtralSettings) -> None:
        self.settings = settings
        self.llm: Any = None  # vllm.v1.engine.async_llm.AsyncLLM
        self.model_cls: Any = None  # the model class, for buffer_realtime_audio
        self.tokenizer: Any = None  # mistral-common MistralTokenizer
        self.delay_ms = 0
        self.realtime_max_tokens = 1
        # vLLM internals the streaming request needs, looked up at start-up.
        self._streaming_input: Any = None  # vllm.engine.protocol.StreamingInput
        self._parse_model_prompt: Any = None  # vllm.renderers.inputs.preprocess.parse_model_prompt
        self._sampling_params_cls: Any = None  # vllm.SamplingParams
        self._delta_outputs: Any = None  # vllm.sampling_params.RequestOutputKind.DELTA

    def max_model_len(self) -> int:
        """The longest accepted utterance at 12.5 tokens/s, plus the stream's pads."""
        return math.ceil(self.settings.max_utterance_s * 12.5) + STREAM_OVERHEAD_TOKENS

    def engine_args(self) -> Any:
        settings = self.settings
        return mistral_format_engine_args(
            settings,
            settings.realtime_model,
            max_model_len=self.max_model_len(),
            gpu_memory_utilization=settings.realtime_gpu_memory_utilization,
        )

    async def start(self) -> None:
        # Every internal the request path uses, before the engine is built: a
        # vLLM release that moved one fails here, not on the first utterance.
        from vllm import SamplingParams
        from vllm.engine.protocol import StreamingInput
        from vllm.model_executor.model_loader import get_model_cls
        from vllm.renderers.inputs.preprocess import parse_model_prompt
        from vllm.sampling_params import RequestOutputKind

        self._streaming_input, self._parse_model_prompt = StreamingInput, parse_model_prompt
        self._sampling_params_cls, self._delta_outputs = SamplingParams, RequestOutputKind.DELTA
        # Off the event loop, as the reply model's (see voxmesh.engine_loading).
        self.llm = await start_async_llm("voxtral-realtime", self.engine_args())
        try:
            self.model_cls = get_model_cls(self.llm.model_config)
            if not hasattr(self.model_cls, "buffer_realtime_audio"):
                raise ValueError(
                    f"realtime_model: {self.settings.realtime_model} is a {self.model_cls.__name__}, "
                    "not a streaming (Realtime) Voxtral"
                )
            if not hasattr(getattr(self.llm, "renderer", None), "render_cmpl_async"):
                raise ValueError("this vLLM's AsyncLLM has no renderer.render_cmpl_async for streaming input")
            mistral = self.llm.get_tokenizer().mistral
            audio = mistral.instruct_tokenizer.audio_encoder.audio_config
            if audio.sampling_rate != PIPELINE_SAMPLE_RATE_HZ:
                raise ValueError(
                    f"realtime_model: audio at {audio.sampling_rate} Hz, the pipeline runs at 16 kHz"
                )
        except Exception:
            self.llm.shutdown()
            self.llm = None
            raise
        self.tokenizer = mistral
        self.delay_ms = int(audio.transcription_delay_ms)
        self.realtime_max_tokens = int(getattr(self.model_cls, "realtime_max_tokens", 1))
        if self.delay_ms != self.settings.realtime_delay_ms:
            log.warning(
                "realtime_delay_ms=%d ignored: vLLM takes the delay from the checkpoint's tekken.json (%d ms)",
                self.settings.realtime_delay_ms,
                self.delay_ms,
            )

    async def close(self) -> None:
        if self.llm is not None:
            self.llm.shutdown()
            self.llm = None

    async def streaming_inputs(
        self, audio: AsyncGenerator[np.ndarray, None], sampled: asyncio.Queue[list[int]]
    ) -> AsyncGenerator[Any, None]:
        """The request's inputs: the model's own chunking of ``audio``, rendered for the engine."""
        llm = self.llm
        prompts = self.model_cls.buffer_realtime_audio(audio, sampled, llm.model_config)
        async with contextlib.aclosing(prompts):
            async for prompt in prompts:
                (engine_input,) = await llm.renderer.render_cmpl_async(
                    [self._parse_model_prompt(llm.model_config, prompt)]
                )
                yield self._streaming_input(prompt=engine_input)

    def sampling_params(self) -> Any:
        # One per request: with skip_clone, vLLM uses this very object for the request.
        return self._sampling_params_cls(
            temperature=0.0,  # transcripts are greedy
            max_tokens=self.realtime_max_tokens,
            output_kind=self._delta_outputs,
            detokenize=False,  # ids are decoded here, special tokens dropped
            skip_clone=True,
        )

    def transcriber(self, language: str) -> VllmRealtimeTranscriber:
        return VllmRealtimeTranscriber(self, language)


class VllmRealtimeTranscriber(BackgroundTranscriber):
    """One utterance as one streaming-input request: audio in while the user speaks, the transcript out."""

    def __init__(self, rt: VllmRealtime, language: str = "") -> None:
        super().__init__()
        self.rt = rt
        self.language = language  # checked by the servicer; the streaming prompt takes none
        self.request_id = f"voxtral-realtime-{uuid.uuid4().hex}"
        self._audio: asyncio.Queue[np.ndarray | None] = asyncio.Queue()
        self._sampled: asyncio.Queue[list[int]] = asyncio.Queue()
        self._ids: list[int] = []
        self._closed = False

    def close(self) -> None:
        self._closed = True
        if self._work is not None and not self._work.done():
            self._work.cancel()  # its finally aborts the request in vLLM

    @property
    def tokens(self) -> int:
        """Tokens sampled so far (one per 80 ms of audio, pads included)."""
        return len(self._ids)

    def _stopped(self) -> bool:
        return self._closed

    def _start(self) -> asyncio.Future[None]:
        if self.rt.llm is None:
            raise EngineUnavailable("the realtime vLLM engine is not running")
        return asyncio.create_task(self._run(), name=self.request_id)

    def _push(self, audio: np.ndarray) -> None:
        self._audio.put_nowait(audio)

    def _end(self) -> None:
        self._audio.put_nowait(None)

    async def _audio_stream(self) -> AsyncGenerator[np.ndarray, None]:
        while (piece := await self._audio.get()) is not None:
            yield piece

    async def _run(self) -> None:
        llm = self.rt.llm
        started = time.perf_counter()
        reason = "failed"
        finished = False
        chunks = 0
        try:
            inputs = self.rt.streaming_inputs(self._audio_stream(), self._sampled)
            outputs = llm.generate(inputs, self.rt.sampling_params(), self.request_id)
            async with contextlib.aclosing(outputs):
                # Read to the generator's own end (it returns after the finished output), never
                # `break`: closing vLLM's generator aborts the request, even one that has ended.
                async for output in outputs:
                    chunks += 1
                    ids = list(output.outputs[0].token_ids) if output.outputs else []
                    if ids:
                        # The model reads its own last token beside the next audio chunk.
                        self._sampled.put_nowait(ids)
                        self._ids.extend(ids)
                        self._text = decode_transcript(self.rt.tokenizer, self._ids)
            # The outputs end once the input stream ended and its last chunk ran.
            finished = True
            reason = "end_of_audio"
        except asyncio.CancelledError:
            reason = "cancelled"
            raise
        finally:
            if not finished:
                self._audio.put_nowait(None)  # let the input generator end
                with contextlib.suppress(Exception):
                    await asyncio.shield(llm.abort(self.request_id))
            log.info(
                "realtime transcription stopped",
                extra=logs.fields(
                    engine="vllm",
                    reason=reason,
                    request_id=self.request_id,
                    chunks=chunks,
                    tokens=len(self._ids),
                    audio_s=round(self._samples / PIPELINE_SAMPLE_RATE_HZ, 3),
                    delay_ms=self.rt.delay_ms,
                    seconds=round(time.perf_counter() - started, 3),
                ),
            )
