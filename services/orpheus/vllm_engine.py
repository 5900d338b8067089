"""The ``vllm`` engine: Orpheus on vLLM's in-process async engine + the streaming SNAC decoder.

One ``AsyncLLM`` lives for the whole process on the service's own event loop;
every phrase is a request with a unique id whose token ids arrive as DELTA
outputs (vLLM's V1 engine may merge several steps into one output: each id
of every output goes to the decoder, nothing is parsed back from text).
Continuous batching across sessions is vLLM's; SNAC decode is batched by the
shared :class:`SnacBatcher`. A cancelled phrase aborts its request.

Why not the ``orpheus-speech`` package: its only release (0.1.0) pins an old
vLLM, builds an engine per call on a fresh event loop, re-parses generated
text (losing the tokens V1 merges into one output), hard-codes ``cuda`` for
SNAC and downloads SNAC at import time.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import numpy as np
from voxmesh.services.orpheus.engine import SpeechEngine
from voxmesh.services.orpheus.orpheus_tokens import END_OF_SPEECH, SNAC_SAMPLE_RATE_HZ, prompt_ids
from voxmesh.services.orpheus.snac_batcher import SnacBatcher
from voxmesh.services.orpheus.token_audio import stream_params, tokens_to_audio

from voxmesh import logs
from voxmesh.engine_info import EngineInfo
from voxmesh.errors import EngineNotInstalled, EngineUnavailable
from voxmesh.startup_lock import gpu_startup_lock

if TYPE_CHECKING:
    from voxmesh.services.orpheus.settings import OrpheusSettings

log = logging.getLogger(__name__)


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
        from vllm.v1.engine.async_llm import AsyncLLM
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
        )
        self.llm = AsyncLLM.from_engine_args(args)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        snac = await asyncio.to_thread(load_snac, settings.snac_model, device)
        self.batcher = SnacBatcher(
            SnacDecoder(snac, seed=settings.snac_noise_seed),
            max_batch=settings.snac_max_batch,
            max_wait_s=settings.snac_max_wait_ms / 1000,
        )
        self.batcher.start()

    async def close(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()
        if self.llm is not None:
            self.llm.shutdown()
            self.llm = None

    async def synthesize(self, text: str, voice: str) -> AsyncIterator[np.ndarray]:
        assert self.batcher is not None, "start() was not awaited"
        ids = prompt_ids(self.tokenizer, voice, text)
        audio = tokens_to_audio(self._generate(ids), self.batcher, self.params)
        async with contextlib.aclosing(audio) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _generate(self, ids: list[int]) -> AsyncIterator[list[int]]:
        from vllm import SamplingParams, TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        if self.llm is None:
            raise EngineUnavailable("vllm engine is not running")
        settings = self.settings
        sampling = SamplingParams(
            temperature=settings.temperature,
            top_p=settings.top_p,
            repetition_penalty=settings.repetition_penalty,
            max_tokens=settings.max_phrase_tokens,
            stop_token_ids=[END_OF_SPEECH],
            output_kind=RequestOutputKind.DELTA,
            detokenize=False,
        )
        request_id = f"orpheus-{uuid.uuid4().hex}"
        finished = False
        tokens = 0
        try:
            async for output in self.llm.generate(TokensPrompt(prompt_token_ids=ids), sampling, request_id):
                new = list(output.outputs[0].token_ids) if output.outputs else []
                tokens += len(new)
                if new:
                    yield new
                if output.finished:
                    finished = True
                    break
        finally:
            if not finished:
                # generate() aborts on cancellation too; asking twice is harmless.
                await self.llm.abort(request_id)
            log.info(
                "generation stopped",
                extra=logs.fields(reason="finished" if finished else "cancelled", tokens=tokens),
            )
