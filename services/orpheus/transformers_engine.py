"""The ``transformers`` engine: Orpheus as a ``LlamaForCausalLM`` + the streaming SNAC decoder.

Runs on CUDA when there is one (bfloat16), else on CPU (float32). Each
phrase is one ``generate`` call on a worker thread; a streamer hands every
new token id to the event loop as it is sampled, where the shared SNAC
decoder turns frames into audio while generation goes on. Cancelling the
phrase sets a stop flag that ``generate`` checks after each token.

On CUDA a static KV cache (``--static-cache``, on by default there) lets
transformers compile the decode step into CUDA graphs: per-token latency
drops. CUDA-graph trees are bound to the thread that recorded them, so with
a static cache every phrase runs on one generate thread, taking turns on
the model and on one cache sized once for the longest phrase; the compile
and the graph recording happen in :meth:`TransformersEngine.start`, before
the service reports SERVING (see :mod:`voxmesh.generate_worker`). Without
it phrases run concurrently (each thread its own dynamic cache). Production
serving with real batching across sessions is the ``vllm`` engine's job.

Each phrase's token cap comes from its length (:func:`phrase_token_cap`),
``--max-phrase-tokens`` being the ceiling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from voxmesh.engine_info import EngineInfo
from voxmesh.generate_worker import WARM_UP_TOKENS, GenerateWorker
from voxmesh.services.orpheus.engine import SpeechEngine
from voxmesh.services.orpheus.generation_outcome import StopReason, report_stopped, stop_reason
from voxmesh.services.orpheus.orpheus_tokens import (
    AUDIO_TOKEN_BASE,
    AUDIO_TOKEN_END,
    CODEBOOK_SIZE,
    CODES_PER_FRAME,
    END_OF_SPEECH,
    END_OF_SPEECH_IDS,
    SNAC_SAMPLE_RATE_HZ,
    phrase_token_cap,
    prompt_ids,
)
from voxmesh.services.orpheus.settings import PROMPT_OVERHEAD_IDS
from voxmesh.services.orpheus.snac_batcher import SnacBatcher
from voxmesh.services.orpheus.snac_decoder import SnacDecoder, load_snac
from voxmesh.services.orpheus.token_audio import stream_params, tokens_to_audio
from voxmesh.torch_generation import IdStreamer, StopFlag, pick_device, pick_dtype, use_static_cache

if TYPE_CHECKING:
    from voxmesh.services.orpheus.settings import OrpheusSettings

log = logging.getLogger(__name__)


class AudioFramesOnly:
    """TEST ONLY logits processor: every sampled token is the next slot's audio id.

    A randomly initialised model picks any of 157k ids; tests that need
    well-formed frames from it constrain sampling to slot ``k``'s 4096 ids at
    position ``k`` of each frame (the end-of-speech ids allowed between frames).
    """

    def __init__(self, prompt_length: int) -> None:
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        slot = (input_ids.shape[1] - self.prompt_length) % CODES_PER_FRAME
        allowed = torch.full_like(scores, float("-inf"))
        low = AUDIO_TOKEN_BASE + slot * CODEBOOK_SIZE
        allowed[:, low : low + CODEBOOK_SIZE] = 0.0
        if slot == 0:
            allowed[:, sorted(END_OF_SPEECH_IDS)] = 0.0
        return scores + allowed  # type: ignore[return-value]


class TransformersEngine(SpeechEngine):
    sample_rate_hz = SNAC_SAMPLE_RATE_HZ

    def __init__(self, settings: OrpheusSettings, preloaded: tuple[Any, Any, Any] | None = None) -> None:
        """``preloaded``: (model, tokenizer, snac) already on the device (benchmarks), else loaded from settings."""
        self.settings = settings
        self._preloaded = preloaded
        self.device = pick_device(settings.device)
        self.dtype = pick_dtype(settings.dtype, self.device)
        self.static_cache = use_static_cache(settings.static_cache, self.device)
        self.params = stream_params(settings)
        self.model: Any = None
        self.tokenizer: Any = None
        self.batcher: SnacBatcher | None = None
        self.worker = GenerateWorker(self.static_cache, settings.max_sessions, "orpheus-generate")
        # The longest phrase's prompt and audio tokens. Llama 3's byte-level
        # BPE seldom spends more than one id per character; twice that leaves
        # room for other scripts, and a longer prompt only gets fewer audio
        # tokens (never a static cache overflow).
        self.context_tokens = 2 * settings.max_phrase_chars + PROMPT_OVERHEAD_IDS + settings.max_phrase_tokens

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(engine="transformers", model=self.settings.model, is_fallback=False)

    async def start(self) -> None:
        snac = await asyncio.to_thread(self._load)
        self.worker.size_cache(self.model, self.context_tokens)
        await self.worker.warm_up([self._warm_up], self.settings.model)
        self.batcher = SnacBatcher(
            SnacDecoder(snac, seed=self.settings.snac_noise_seed),
            max_batch=self.settings.snac_max_batch,
            max_wait_s=self.settings.snac_max_wait_ms / 1000,
            first_window_priority=self.settings.first_audio_priority,
        )
        self.batcher.start()

    def _load(self) -> Any:
        from transformers import AutoTokenizer, LlamaForCausalLM

        if self._preloaded is not None:
            self.model, self.tokenizer, snac = self._preloaded
            return snac

        log.info(
            "loading Orpheus", extra={"fields": {"model": self.settings.model, "device": str(self.device)}}
        )
        self.tokenizer = AutoTokenizer.from_pretrained(self.settings.model)
        model: Any = LlamaForCausalLM.from_pretrained(self.settings.model, dtype=self.dtype)
        if model.config.vocab_size < AUDIO_TOKEN_END:
            raise ValueError(
                f"model: vocabulary of {model.config.vocab_size} ids has no room for Orpheus' audio ids "
                f"(needs {AUDIO_TOKEN_END}): not an Orpheus checkpoint"
            )
        self.model = model.to(self.device).eval()
        return load_snac(self.settings.snac_model, self.device)

    def _warm_up(self) -> None:
        """One short phrase through the compiled path: prefill, then decode steps on the sized cache."""
        ids = prompt_ids(self.tokenizer, self.settings.voice, "Warming up.")
        self._run_generate(
            ids,
            IdStreamer(lambda new: None),
            threading.Event(),
            WARM_UP_TOKENS,
            min_new_tokens=WARM_UP_TOKENS,
        )

    async def close(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()
        self.worker.shutdown()

    async def synthesize(
        self, text: str, voice: str, first_in_turn: bool = False
    ) -> AsyncIterator[np.ndarray]:
        assert self.batcher is not None, "start() was not awaited"
        ids = prompt_ids(self.tokenizer, voice, text)
        cap = phrase_token_cap(len(text), self.settings.max_phrase_tokens)
        if self.static_cache:
            cap = max(1, min(cap, self.context_tokens - len(ids)))
        audio = tokens_to_audio(self._generate(ids, cap), self.batcher, self.params)
        async with contextlib.aclosing(audio) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _generate(self, ids: list[int], max_tokens: int) -> AsyncIterator[list[int]]:
        """Token ids as ``generate`` samples them, until an end-of-speech id or ``max_tokens``."""
        loop = asyncio.get_running_loop()
        # Unbounded in form, bounded in fact: at most max_tokens entries.
        queue: asyncio.Queue[list[int] | None] = asyncio.Queue()
        stop = threading.Event()

        def on_ids(new: list[int]) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, new)

        def run() -> None:
            try:
                self._run_generate(ids, IdStreamer(on_ids), stop, max_tokens)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        future = self.worker.submit(run)
        tokens = 0
        reason: StopReason | None = None
        try:
            while (new := await queue.get()) is not None:
                tokens += len(new)
                # Before the yield: the reader closes this generator as soon as it sees an end id.
                reason = stop_reason(new, tokens, max_tokens)
                yield new
            await future
            # generate returned on its own: at an end id or at max_new_tokens (the cap).
            reason = reason or "token_cap"
        finally:
            if reason is None:
                stop.set()
            if not future.done():
                # Wait for generate to stop (one token after the flag), so the
                # thread and its KV cache are free when the turn ends.
                with contextlib.suppress(Exception):
                    await asyncio.shield(future)
            report_stopped("transformers", reason or "cancelled", tokens)

    def _run_generate(
        self, ids: list[int], streamer: IdStreamer, stop: threading.Event, max_tokens: int, **extra: Any
    ) -> None:
        """One ``generate`` call; on the worker thread (with a static cache, the only one)."""
        from transformers import LogitsProcessorList, StoppingCriteriaList

        processors = LogitsProcessorList()
        if self.settings.test_audio_frames_only:
            processors.append(AudioFramesOnly(len(ids)))
        input_ids = torch.tensor([ids], device=self.device)
        with torch.inference_mode():
            if stop.is_set():
                return
            self.model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                do_sample=True,
                temperature=self.settings.temperature,
                top_p=self.settings.top_p,
                top_k=0,  # off, as in the model card's vLLM sampling
                repetition_penalty=self.settings.repetition_penalty,
                max_new_tokens=max_tokens,
                # Not the checkpoint's own eos_token_id (128009 alone): the
                # same ids as the vllm engine's stop_token_ids.
                eos_token_id=sorted(END_OF_SPEECH_IDS),
                pad_token_id=END_OF_SPEECH,
                logits_processor=processors,
                stopping_criteria=StoppingCriteriaList([StopFlag(stop)]),
                streamer=streamer,
                **self.worker.cache_args(),
                **extra,
            )
