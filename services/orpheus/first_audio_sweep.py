"""Time to first audio under load: concurrent streams of turns through one engine (for bench/).

Each stream speaks ``turns`` turns of ``phrases`` phrases, the first with
``first_in_turn=True``, after a random pause, so streams drift apart and a
turn starts while other streams are in the middle of theirs: the moment
first-audio priority is for, a listener waiting in silence while the engine
is busy with phrases that are already playing elsewhere. Time to first
audio is from the first phrase's ``synthesize`` call to its first chunk
(engine-side: no gRPC, no resampling). Used by ``bench/orpheus_first_audio.py``
(tiny model, CPU) and ``bench/orpheus_gpu.py`` (3B, GPU).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from voxmesh.services.orpheus.engine import SpeechEngine

#: Phrases as the splitter cuts them: a short first clause, then sentences.
PHRASES = (
    "Sure, let me see.",
    "The next train leaves at ten past four from platform two.",
    "It takes about forty minutes to get there.",
    "Would you like me to check the return times as well?",
)


@dataclass(frozen=True)
class Workload:
    turns: int = 4
    phrases: int = 3
    #: Longest pause before a turn (uniform from 0), in seconds.
    max_pause_s: float = 1.0
    seed: int = 0


async def _stream(engine: SpeechEngine, workload: Workload, rng: random.Random) -> list[float]:
    """Time to first audio of each of one stream's turns, in seconds."""
    firsts = []
    for _ in range(workload.turns):
        await asyncio.sleep(rng.uniform(0, workload.max_pause_s))
        started = time.perf_counter()
        first: float | None = None
        for index in range(workload.phrases):
            phrase = PHRASES[min(index, len(PHRASES) - 1)]
            async for _chunk in engine.synthesize(phrase, "tara", first_in_turn=index == 0):
                if first is None:
                    first = time.perf_counter() - started
        if first is not None:
            firsts.append(first)
    return firsts


async def run_level(engine: SpeechEngine, streams: int, workload: Workload) -> dict[str, Any]:
    """One load level: ``streams`` concurrent streams; time to first audio p50/p95/max in ms."""
    started = time.perf_counter()
    per_stream = await asyncio.gather(
        *(_stream(engine, workload, random.Random(workload.seed * 1000 + i)) for i in range(streams))
    )
    firsts_ms = [1000 * s for stream in per_stream for s in stream]
    return {
        "streams": streams,
        "turns": len(firsts_ms),
        "ttfa_ms_p50": round(float(np.percentile(firsts_ms, 50)), 1),
        "ttfa_ms_p95": round(float(np.percentile(firsts_ms, 95)), 1),
        "ttfa_ms_max": round(max(firsts_ms), 1),
        "wall_s": round(time.perf_counter() - started, 1),
    }
