"""The ``echo`` engine: the loop-back used when no Voxtral model is available.

It is not Voxtral and says so (``is_fallback``): pocketsphinx transcribes the
utterance (its English model ships in its wheel) while the user speaks, and
the reply repeats what it heard, streamed word by word like a model's
deltas. It lets the whole mesh run on a laptop with no GPU and no weights.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from pocketsphinx import Decoder
from voxmesh.services.voxtral.engine import Delta, LiveTranscriber, Message, ReplyEngine, Sampling
from voxmesh.services.voxtral.pocketsphinx_pool import DecoderPool

from voxmesh.audio import float_to_pcm16
from voxmesh.engine_info import EngineInfo

#: What the echo says when pocketsphinx heard nothing it could spell.
NOTHING_HEARD = "Sorry, I did not catch that."


class _Transcriber(LiveTranscriber):
    """One utterance on a borrowed decoder; calls are awaited one at a time by the turn."""

    def __init__(self, pool: DecoderPool, executor: ThreadPoolExecutor) -> None:
        self._pool = pool
        self._executor = executor
        self._decoder: Decoder | None = None
        self._text = ""

    def _feed(self, pcm: bytes) -> str:
        if self._decoder is None:
            self._decoder = self._pool.acquire()
            self._decoder.start_utt()
        self._decoder.process_raw(pcm)
        hyp = self._decoder.hyp()
        return hyp.hypstr if hyp is not None else ""

    def _finish(self) -> str:
        if self._decoder is None:
            return ""
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        return hyp.hypstr if hyp is not None else ""

    async def feed(self, audio: np.ndarray) -> str | None:
        loop = asyncio.get_running_loop()
        text = await loop.run_in_executor(self._executor, self._feed, float_to_pcm16(audio))
        if text == self._text:
            return None
        self._text = text
        return text

    async def finish(self) -> str:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._finish)

    def close(self) -> None:
        # On the decoding thread, after any feed still running for a cancelled
        # turn: the decoder is never touched by two threads at once.
        with contextlib.suppress(RuntimeError):  # the engine already shut down
            self._executor.submit(self._release)

    def _release(self) -> None:
        decoder, self._decoder = self._decoder, None
        if decoder is not None:
            # A cancelled turn may leave an utterance open; end_utt resets it.
            with contextlib.suppress(RuntimeError):
                decoder.end_utt()
            self._pool.release(decoder)


class EchoEngine(ReplyEngine):
    def __init__(self) -> None:
        self._pool = DecoderPool()
        # One thread for all pocketsphinx work: it holds the GIL while it
        # decodes, and two decoding threads took 4.4x as long as one doing
        # both utterances in turn (GIL hand-offs), measured on 2 cores.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="pocketsphinx")

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(engine="echo", model="pocketsphinx en-us", is_fallback=True)

    async def start(self) -> None:
        # Load one decoder before SERVING so the first turn does not pay ~0.6 s.
        decoder = await asyncio.get_running_loop().run_in_executor(self._executor, self._pool.acquire)
        self._pool.release(decoder)

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def transcriber(self, language: str) -> LiveTranscriber:
        return _Transcriber(self._pool, self._executor)

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 1

    async def generate(self, messages: list[Message], sampling: Sampling) -> AsyncIterator[Delta]:
        user = messages[-1]
        heard = user.text
        if user.audio is not None:
            transcriber = self.transcriber("en")
            try:
                await transcriber.feed(user.audio)
                heard = await transcriber.finish()
            finally:
                transcriber.close()
        heard = heard.strip()
        reply = f"You said: {heard}." if heard else NOTHING_HEARD
        words = re.findall(r"\S+\s*", reply)[: sampling.max_tokens]
        prompt_tokens = sum(self.count_tokens(m.text) for m in messages)
        for i, word in enumerate(words):
            # Yield to the loop between words, as a model streaming tokens would.
            await asyncio.sleep(0)
            last = i == len(words) - 1
            yield Delta(
                text=word,
                finish_reason=("stop" if len(words) < sampling.max_tokens else "length") if last else None,
                prompt_tokens=prompt_tokens if last else 0,
                generated_tokens=len(words) if last else 0,
            )
