"""The ``vllm`` engine: Orpheus on vLLM's in-process async engine + the streaming SNAC decoder.

One ``AsyncLLM`` lives for the whole process, built on a thread of its own
(the service answers NOT_SERVING and honours SIGTERM while it loads) and
driven from the service's event loop;
every phrase is a request with a unique id whose token ids arrive as DELTA
outputs (vLLM's V1 engine may merge several steps into one output: each id
of every output goes to the decoder, nothing is parsed back from text).
Continuous batching across sessions is vLLM's; SNAC decode is batched by the
shared :class:`SnacBatcher`. A cancelled phrase aborts its request; a
phrase that ended is never aborted (vLLM's own generator is run to its end).

Under load, a turn's first phrase goes ahead: the engine runs vLLM's
priority scheduler and gives first phrases a higher priority (a lower
number), so when requests queue for a batch slot, the one a listener is
waiting on in silence is scheduled before phrases of turns already playing.

Why not the ``orpheus-speech`` package: its only release (0.1.0) pins an old
vLLM, builds an engine per call on a fresh event loop, re-parses generated
text (losing the tokens V1 merges into one output), hard-codes ``cuda`` for
SNAC and downloads SNAC at import time.

Each phrase's token cap comes from its length (:func:`phrase_token_cap`, as in
the transformers engine), ``--max-phrase-tokens`` being the ceiling.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import numpy as np

from voxmesh.engine_info import EngineInfo
from voxmesh.engine_loading import start_async_llm
from voxmesh.errors import EngineNotInstalled, EngineUnavailable
from voxmesh.services.orpheus.engine import SpeechEngine
from voxmesh.services.orpheus.generation_outcome import StopReason, report_stopped, stop_reason
from voxmesh.services.orpheus.orpheus_tokens import (
    END_OF_SPEECH_IDS,
    SNAC_SAMPLE_RATE_HZ,
    phrase_token_cap,
    prompt_ids,
)
from voxmesh.services.orpheus.snac_batcher import SnacBatcher
from voxmesh.services.orpheus.token_audio import stream_params, tokens_to_audio
from voxmesh.startup_lock import gpu_startup_lock

if TYPE_CHECKING:
    from voxmesh.services.orpheus.settings import OrpheusSettings

log = logging.getLogger(__name__)

#: vLLM priorities (lower is served first): a turn's first phrase, then the rest.
FIRST_PHRASE_PRIORITY = 0
LATER_PHRASE_PRIORITY = 1


class VllmEngine(SpeechEngine):
    sample_rate_hz = SNAC_SAMPLE_RATE_HZ

    def __init__(self, settings: OrpheusSettings) -> None:
        try:
            import vllm  # noqa: F401
        except ImportError as exc:
            raise EngineNotInstalled(
                "engine vllm needs vLLM: install the `gpu` extra (pip install 'voxmesh[gpu]') "
                "or run --engine transformers"
            ) from exc
        self.settings = settings
        self.params = stream_params(settings)
        self.llm: Any = None
        self.tokenizer: Any = None
        self.batcher: SnacBatcher | None = None

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(engine="vllm", model=self.settings.model, is_fallback=False)

    async def start(self) -> None:
        # One engine at a time profiles memory on a shared card (vLLM issue #55827).
        async with gpu_startup_lock(self.settings.gpu_startup_lock, "orpheus"):
            await self._start()

    async def _start(self) -> None:
        import asyncio

        import torch
        from transformers import AutoTokenizer
        from vllm.engine.arg_utils import AsyncEngineArgs

        from voxmesh.services.orpheus.snac_decoder import SnacDecoder, load_snac

        settings = self.settings
        self.tokenizer = await asyncio.to_thread(AutoTokenizer.from_pretrained, settings.model)
        args = AsyncEngineArgs(
            model=settings.model,
            dtype=settings.dtype,
            gpu_memory_utilization=settings.gpu_memory_utilization,
            max_model_len=settings.vllm_max_model_len,
            max_num_seqs=settings.max_sessions,
            # Prompts are token ids and outputs are read as ids: vLLM needs no tokenizer.
            skip_tokenizer_init=True,
            enable_prefix_caching=True,
            disable_log_stats=True,
            scheduling_policy="priority" if settings.first_audio_priority else "fcfs",
        )
        # Off the event loop: from_engine_args polls the engine core synchronously for the whole
        # load (see voxmesh.engine_loading); its output handler starts here at the first request.
        self.llm = await start_async_llm("orpheus", args)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        snac = await asyncio.to_thread(load_snac, settings.snac_model, device)
        self.batcher = SnacBatcher(
            SnacDecoder(snac, seed=settings.snac_noise_seed),
            max_batch=settings.snac_max_batch,
            max_wait_s=settings.snac_max_wait_ms / 1000,
            first_window_priority=settings.first_audio_priority,
        )
        self.batcher.start()

    async def close(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()
        if self.llm is not None:
            self.llm.shutdown()
            self.llm = None

    async def synthesize(
        self, text: str, voice: str, first_in_turn: bool = False
    ) -> AsyncIterator[np.ndarray]:
        assert self.batcher is not None, "start() was not awaited"
        ids = prompt_ids(self.tokenizer, voice, text)
        # A run that misses end-of-speech speaks noise up to its cap: a short phrase's is short.
        cap = phrase_token_cap(len(text), self.settings.max_phrase_tokens)
        audio = tokens_to_audio(self._generate(ids, first_in_turn, cap), self.batcher, self.params)
        async with contextlib.aclosing(audio) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _generate(
        self, ids: list[int], first_in_turn: bool, max_tokens: int
    ) -> AsyncIterator[list[int]]:
        from vllm import SamplingParams, TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        if self.llm is None:
            raise EngineUnavailable("vllm engine is not running")
        settings = self.settings
        sampling = SamplingParams(
            temperature=settings.temperature,
            top_p=settings.top_p,
            repetition_penalty=settings.repetition_penalty,
            max_tokens=max_tokens,
            # Exactly the transformers engine's eos_token_id list; ignore_eos keeps
            # vLLM from adding the checkpoint's own EOS on top (the set is the same
            # for Orpheus, but one list decides, in both engines).
            stop_token_ids=sorted(END_OF_SPEECH_IDS),
            ignore_eos=True,
            output_kind=RequestOutputKind.DELTA,
            detokenize=False,
        )
        # vLLM refuses a non-zero priority unless its priority scheduler runs.
        priority = 0
        if settings.first_audio_priority:
            priority = FIRST_PHRASE_PRIORITY if first_in_turn else LATER_PHRASE_PRIORITY
        request_id = f"orpheus-{uuid.uuid4().hex}"
        tokens = 0
        finished = False
        reason: StopReason | None = None
        last: list[int] = []
        try:
            prompt = TokensPrompt(prompt_token_ids=ids)
            outputs = self.llm.generate(prompt, sampling, request_id, priority=priority)
            async with contextlib.aclosing(outputs):
                async for output in outputs:
                    new = list(output.outputs[0].token_ids) if output.outputs else []
                    tokens += len(new)
                    if output.finished:
                        # Held back until vLLM's generator has returned: the reader
                        # closes us as soon as it sees the end id, and closing vLLM's
                        # generator then would abort a request that has finished.
                        finished = True
                        reason = stop_reason(new, tokens, max_tokens)
                        last = new
                    elif new:
                        yield new
            if last:
                yield last
        finally:
            if not finished:
                # generate() aborts on cancellation too; asking twice is harmless.
                await self.llm.abort(request_id)
            report_stopped("vllm", reason or "cancelled", tokens)
