"""The ``null`` engine: no transcription (a fixed transcript), a fixed reply, no CPU cost.

For benchmarks of the mesh itself (gateway overhead, many sessions): what
remains of a turn's latency is gRPC hops and scheduling, not a model.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np

from voxmesh.engine_info import EngineInfo
from voxmesh.services.voxtral.engine import Delta, LiveTranscriber, Message, ReplyEngine, Sampling
from voxmesh.services.voxtral.tools import Tools

REPLY = ("Okay. ", "That ", "is ", "noted.")
#: Not empty: a turn with an empty transcript gets no reply (NO_SPEECH), and this engine hears nothing.
TRANSCRIPT = "(null engine: not transcribed)"


class _Transcriber(LiveTranscriber):
    async def feed(self, audio: np.ndarray) -> str | None:
        return None

    async def finish(self) -> str:
        return TRANSCRIPT


class NullEngine(ReplyEngine):
    @property
    def info(self) -> EngineInfo:
        return EngineInfo(engine="null", is_fallback=True)

    def transcriber(self, language: str) -> LiveTranscriber:
        return _Transcriber()

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 1

    async def generate(
        self, messages: list[Message], sampling: Sampling, tools: Tools | None = None
    ) -> AsyncIterator[Delta]:
        for i, word in enumerate(REPLY):
            await asyncio.sleep(0)
            last = i == len(REPLY) - 1
            yield Delta(word, "stop" if last else None, 1 if last else 0, len(REPLY) if last else 0)
