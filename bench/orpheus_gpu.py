"""Orpheus speed on a GPU: a full-size random-weight Orpheus 3B + full-size SNAC 24 kHz.

Random weights decode exactly as fast as the real ones (same shapes, same
kernels), so this gives true figures with no download. Sampling is held to
well-formed audio frames (the engine's test-only logits processor), so every
generated token becomes audio and the SNAC path is exercised as in production.

    python bench/orpheus_gpu.py                  # on a CUDA machine
    python bench/orpheus_gpu.py --tiny --device cpu   # smoke test of the script itself

Reports time to first audio for a short phrase, single-stream tokens/s
against the 82 tokens/s that real time needs (7 tokens per 2048-sample frame
at 24 kHz: 7 * 24000 / 2048 = 82.03), the same against the memory-bandwidth
bound (weight bytes / HBM bandwidth), and how many concurrent streams stay
faster than real time. Then time to first audio under load (p50/p95 at 1, 4
and 16 streams of turns, ``first_audio_sweep``), with first-audio priority
off and on: this engine is transformers, so what priority changes here is the
shared SNAC batcher (vLLM's priority scheduling needs vLLM:
``bench/orpheus_first_audio.py``). Writes JSON next to the printout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from typing import Any

import numpy as np
import torch

from voxmesh.services.orpheus.first_audio_sweep import Workload, run_level
from voxmesh.services.orpheus.orpheus_tokens import SAMPLES_PER_FRAME
from voxmesh.services.orpheus.random_checkpoint import (
    ORPHEUS_3B_CONFIG,
    TINY_ORPHEUS_CONFIG,
    TINY_SNAC_CONFIG,
    byte_tokenizer,
    random_llama,
    random_snac,
)
from voxmesh.services.orpheus.settings import OrpheusSettings
from voxmesh.services.orpheus.snac_decoder import SNAC_24KHZ_CONFIG
from voxmesh.services.orpheus.transformers_engine import TransformersEngine

REAL_TIME_TOKENS_PER_S = 7 * 24_000 / SAMPLES_PER_FRAME
PHRASE = "Hello there, how can I help you today?"
#: Peak HBM bandwidth by device name fragment, bytes/s (vendor data sheets).
HBM_BANDWIDTH = {
    "H200": 4.8e12,
    "H100 SXM": 3.35e12,
    "H100 PCIe": 2.0e12,
    "H100": 3.35e12,
    "A100": 2.0e12,
    "L40S": 0.864e12,
    "4090": 1.008e12,
}


def bandwidth(name: str) -> float | None:
    return next((bw for key, bw in HBM_BANDWIDTH.items() if key in name), None)


async def one_stream(engine: TransformersEngine, text: str) -> dict[str, float]:
    started = time.perf_counter()
    first = None
    samples = 0
    async for chunk in engine.synthesize(text, "tara"):
        if first is None:
            first = time.perf_counter() - started
        samples += len(chunk)
    wall = time.perf_counter() - started
    audio_s = samples / engine.sample_rate_hz
    tokens = samples / SAMPLES_PER_FRAME * 7
    return {
        "ttfa_ms": 1000 * (first or wall),
        "wall_s": wall,
        "audio_s": audio_s,
        "tokens_per_s": tokens / wall,
        "rtf": audio_s / wall,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    llama_config = TINY_ORPHEUS_CONFIG if args.tiny else ORPHEUS_3B_CONFIG
    snac_config = TINY_SNAC_CONFIG if args.tiny else SNAC_24KHZ_CONFIG
    print(f"building a random {'tiny' if args.tiny else '3B'} Orpheus on {device} ({dtype}) ...", flush=True)
    model = random_llama(llama_config, dtype=dtype).to(device).eval()
    snac = random_snac(snac_config).to(device)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    settings = OrpheusSettings(
        engine="transformers",
        device=str(device),
        dtype=str(dtype).removeprefix("torch."),
        max_phrase_tokens=args.tokens,
        static_cache=args.static_cache,
        test_audio_frames_only=True,
        max_sessions=max(args.streams),
    )
    preloaded = (model, byte_tokenizer(), snac)
    engine = TransformersEngine(settings, preloaded=preloaded)
    await engine.start()
    print("warm-up ...", flush=True)
    await one_stream(engine, PHRASE)

    single = [await one_stream(engine, PHRASE) for _ in range(args.repeats)]
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "torch": torch.__version__,
        "model": "tiny" if args.tiny else "orpheus-3b (random weights)",
        "weight_gb": round(weight_bytes / 1e9, 2),
        "tokens_per_phrase": args.tokens,
        "static_cache": engine.static_cache,
        "single": {
            "ttfa_ms_p50": round(float(np.median([r["ttfa_ms"] for r in single])), 1),
            "tokens_per_s": round(float(np.median([r["tokens_per_s"] for r in single])), 1),
            "real_time_factor": round(float(np.median([r["rtf"] for r in single])), 2),
        },
        "concurrent": [],
    }
    bw = bandwidth(result["device"])
    if bw:
        bound = bw / weight_bytes
        result["bandwidth_bound_tokens_per_s"] = round(bound, 1)
        result["single"]["fraction_of_bound"] = round(result["single"]["tokens_per_s"] / bound, 2)
    print(json.dumps(result["single"]), flush=True)
    save(args.json, result)
    for n in args.streams:
        runs = await asyncio.gather(*(one_stream(engine, PHRASE) for _ in range(n)))
        level = {
            "streams": n,
            "ttfa_ms_p50": round(float(np.median([r["ttfa_ms"] for r in runs])), 1),
            "ttfa_ms_max": round(max(r["ttfa_ms"] for r in runs), 1),
            "min_real_time_factor": round(min(r["rtf"] for r in runs), 2),
            "aggregate_tokens_per_s": round(sum(r["tokens_per_s"] for r in runs), 1),
        }
        result["concurrent"].append(level)
        print(json.dumps(level), flush=True)
        save(args.json, result)
    await engine.close()
    result["first_audio_sweep"] = {}
    await first_audio_sweep(args, settings, preloaded, result)
    return result


def save(path: str, result: dict[str, Any]) -> None:
    """Written after every part: a run stopped by a time limit keeps what it measured."""
    with open(path, "w") as f:
        json.dump(result, f, indent=2)


async def first_audio_sweep(
    args: argparse.Namespace,
    settings: OrpheusSettings,
    preloaded: tuple[Any, Any, Any],
    result: dict[str, Any],
) -> None:
    """Time to first audio p50/p95 per load level, first-audio priority off then on (same weights)."""
    streams_levels = (
        args.sweep_streams if args.sweep_streams is not None else ([1, 2] if args.tiny else [1, 4, 16])
    )
    if not streams_levels:
        return
    workload = Workload(turns=args.sweep_turns, phrases=2, max_pause_s=1.0)
    out = result["first_audio_sweep"]
    out.update(tokens_per_phrase=args.sweep_tokens, workload=vars(workload))
    for priority in args.sweep_priority:
        update = {
            "max_phrase_tokens": args.sweep_tokens,
            "first_audio_priority": priority == "on",
            "max_sessions": max(streams_levels),  # a generate thread per stream
        }
        engine = TransformersEngine(settings.model_copy(update=update), preloaded=preloaded)
        await engine.start()
        try:
            out[priority] = levels = []
            for streams in streams_levels:
                levels.append(await run_level(engine, streams, workload))
                print(f"first audio, priority {priority}: {json.dumps(levels[-1])}", flush=True)
                save(args.json, result)
        finally:
            await engine.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny model (smoke test on CPU)")
    parser.add_argument(
        "--tokens", type=int, default=7 * 41, help="audio tokens per phrase (41 frames = 3.5 s)"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--streams", default="1,2,4,8,16", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--static-cache", default="off", choices=["on", "off", "auto"])
    parser.add_argument(
        "--sweep-streams",
        default=None,
        type=lambda s: [int(x) for x in s.split(",") if x],
        help="first-audio sweep load levels (default 1,4,16; --tiny 1,2; '' skips the sweep)",
    )
    parser.add_argument("--sweep-turns", type=int, default=2, help="first-audio sweep: turns per stream")
    parser.add_argument(
        "--sweep-tokens",
        type=int,
        default=7 * 8,
        help="first-audio sweep: audio tokens per phrase (8 frames)",
    )
    parser.add_argument(
        "--sweep-priority", default="off,on", type=lambda s: s.split(","), help="off, on or off,on"
    )
    parser.add_argument("--json", default="bench/orpheus-gpu-results.json")
    args = parser.parse_args()
    save(args.json, asyncio.run(main(args)))
    print(f"wrote {args.json}")
