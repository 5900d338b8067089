"""Orpheus speed on a GPU: a full-size random-weight Orpheus 3B + full-size SNAC 24 kHz.

Random weights decode exactly as fast as the real ones (same shapes, same
kernels), so this gives true figures with no download. Sampling is held to
well-formed audio frames (the engine's test-only logits processor), so every
generated token becomes audio and the SNAC path is exercised as in production.
The models are built on the device in its dtype (bfloat16 on CUDA): a 3.3 B
model initialised on the CPU in float32 first took most of a short GPU lease.

    python bench/orpheus_gpu.py                        # on a CUDA machine
    python bench/orpheus_gpu.py --tiny --device cpu    # smoke test of the script itself

Measured in this order, the JSON rewritten after every step (a run cut by a
time limit keeps what it measured):

1. ``streams``: the streams sweep, 1/4/16/32/64 concurrent real-time streams,
   each one turn of two phrases through the service's own
   :class:`SynthesisSession` (phrase splitting, the next phrase started while
   the current one plays, the shared SNAC batcher) on the engine's default
   path for the device (``--static-cache auto``: on CUDA the static cache and
   its compiled decode step, warmed up in ``start()``). Per level: time to
   first audio p50/p95, real-time factor (audio seconds per wall second from
   the request to the last chunk: below 1 the listener waits), and the
   largest playback gap of a client that starts playing at the first chunk.
   A level whose cost, extrapolated from the levels before it, would pass
   ``--budget-s`` is recorded as skipped, never started.
2. ``single``: one stream, tokens/s against the 82 tokens/s real time needs
   (7 tokens per 2048-sample frame at 24 kHz) and the memory-bandwidth bound
   (weight bytes / HBM bandwidth), on the default path, then eager
   (``--static-cache off``) for comparison.
3. ``first_audio_sweep`` (only with ``--sweep-streams``): time to first audio
   under load, first-audio priority off and on (``first_audio_sweep``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import torch

from voxmesh.services.orpheus.first_audio_sweep import PHRASES, Workload, run_level
from voxmesh.services.orpheus.orpheus_tokens import SAMPLES_PER_FRAME, SNAC_SAMPLE_RATE_HZ
from voxmesh.services.orpheus.random_checkpoint import (
    ORPHEUS_3B_CONFIG,
    TINY_ORPHEUS_CONFIG,
    TINY_SNAC_CONFIG,
    byte_tokenizer,
    random_llama,
    random_snac,
)
from voxmesh.services.orpheus.session import SynthesisSession
from voxmesh.services.orpheus.settings import OrpheusSettings
from voxmesh.services.orpheus.snac_decoder import SNAC_24KHZ_CONFIG
from voxmesh.services.orpheus.transformers_engine import TransformersEngine
from voxmesh.v1 import orpheus_pb2

REAL_TIME_TOKENS_PER_S = 7 * 24_000 / SAMPLES_PER_FRAME
PHRASE = "Hello there, how can I help you today?"
#: One turn of the streams sweep: a short first clause, then a sentence (two phrases).
TURN_TEXT = f"{PHRASES[0]} {PHRASES[2]}"
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


def on_device(build: Any, device: torch.device, dtype: torch.dtype) -> Any:
    """``build()`` with its parameters created on ``device`` in ``dtype`` (no CPU float32 copy first)."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            return build()
    finally:
        torch.set_default_dtype(default)


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1)


# ------------------------------------------------------------ streams sweep


def playback_gaps_s(arrivals: list[tuple[float, float]]) -> list[float]:
    """Silence before each chunk for a client that plays from the first chunk, each right after the last.

    ``arrivals``: (arrival time s, audio s) per chunk, in order.
    """
    if not arrivals:
        return []
    play_end, gaps = arrivals[0][0], []
    for arrived, seconds in arrivals:
        gaps.append(max(0.0, arrived - play_end))
        play_end = max(play_end, arrived) + seconds
    return gaps


async def one_stream_turn(
    engine: TransformersEngine, settings: OrpheusSettings, text: str
) -> dict[str, float]:
    """One turn through a :class:`SynthesisSession`, as the service speaks it; its playback figures."""
    session = SynthesisSession(engine, "tara", SNAC_SAMPLE_RATE_HZ, settings)

    async def requests() -> AsyncIterator[orpheus_pb2.SynthesizeRequest]:
        yield orpheus_pb2.SynthesizeRequest(text=orpheus_pb2.TextDelta(turn_id=1, text=text))
        yield orpheus_pb2.SynthesizeRequest(end_of_text=orpheus_pb2.EndOfText(turn_id=1))

    started = time.perf_counter()
    arrivals: list[tuple[float, float]] = []
    async for event in session.run(requests()):
        if event.WhichOneof("event") == "audio":
            seconds = len(event.audio.pcm) / 2 / event.audio.sample_rate_hz
            arrivals.append((time.perf_counter() - started, seconds))
        elif event.WhichOneof("event") == "failed":
            raise RuntimeError(f"turn failed: {event.failed.message}")
    wall = time.perf_counter() - started
    audio_s = sum(seconds for _, seconds in arrivals)
    gaps = playback_gaps_s(arrivals)
    return {
        "first_audio_ms": 1000 * (arrivals[0][0] if arrivals else wall),
        "audio_s": audio_s,
        "wall_s": wall,
        "rtf": audio_s / wall if wall > 0 else 0.0,
        "largest_gap_ms": 1000 * max(gaps, default=0.0),
    }


async def streams_level(
    engine: TransformersEngine, settings: OrpheusSettings, streams: int
) -> dict[str, Any]:
    started = time.perf_counter()
    runs = await asyncio.gather(*(one_stream_turn(engine, settings, TURN_TEXT) for _ in range(streams)))
    wall = time.perf_counter() - started
    first = [r["first_audio_ms"] for r in runs]
    rtf = [r["rtf"] for r in runs]
    gaps = [r["largest_gap_ms"] for r in runs]
    audio_s = sum(r["audio_s"] for r in runs)
    return {
        "streams": streams,
        "first_audio_ms_p50": percentile(first, 50),
        "first_audio_ms_p95": percentile(first, 95),
        "real_time_factor_p50": round(float(np.median(rtf)), 2),
        "real_time_factor_min": round(min(rtf), 2),
        "largest_gap_ms_p95": percentile(gaps, 95),
        "largest_gap_ms_max": round(max(gaps), 1),
        "audio_s_per_stream": round(audio_s / streams, 2),
        "aggregate_audio_s_per_s": round(audio_s / wall, 2),
        "wall_s": round(wall, 1),
    }


async def streams_sweep(
    engine: TransformersEngine, settings: OrpheusSettings, args: argparse.Namespace, result: dict[str, Any]
) -> None:
    out: list[dict[str, Any]] = result["streams"]["levels"]
    rate = 0.0  # aggregate audio seconds per wall second at the last level
    per_stream = 0.0
    for streams in args.streams:
        left = args.budget_s - (time.perf_counter() - args.started)
        if rate > 0:
            # No level is started that would not end inside the budget (a batching engine only
            # gets faster per stream with more of them; this one takes turns: the rate holds).
            estimate = streams * per_stream / rate
            if estimate > left:
                out.append({"streams": streams, "skipped": f"estimated {estimate:.0f} s > {left:.0f} s left"})
                print(
                    f"streams {streams}: skipped (estimated {estimate:.0f} s, {left:.0f} s left)", flush=True
                )
                save(args.json, result)
                break
        level = await streams_level(engine, settings, streams)
        rate, per_stream = level["aggregate_audio_s_per_s"], level["audio_s_per_stream"]
        out.append(level)
        print(f"streams: {json.dumps(level)}", flush=True)
        save(args.json, result)


# ----------------------------------------------------------- single stream


async def one_stream(engine: TransformersEngine, text: str) -> dict[str, float]:
    started = time.perf_counter()
    first = None
    samples = 0
    async for chunk in engine.synthesize(text, "tara", first_in_turn=True):
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


async def single_stream(engine: TransformersEngine, repeats: int, bound: float | None) -> dict[str, Any]:
    runs = [await one_stream(engine, PHRASE) for _ in range(repeats)]
    single: dict[str, Any] = {
        "static_cache": engine.static_cache,
        "ttfa_ms_p50": round(float(np.median([r["ttfa_ms"] for r in runs])), 1),
        "tokens_per_s": round(float(np.median([r["tokens_per_s"] for r in runs])), 1),
        "real_time_factor": round(float(np.median([r["rtf"] for r in runs])), 2),
    }
    if bound:
        single["fraction_of_bound"] = round(single["tokens_per_s"] / bound, 2)
    return single


# -------------------------------------------------------------------- main


async def main(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    llama_config = TINY_ORPHEUS_CONFIG if args.tiny else ORPHEUS_3B_CONFIG
    snac_config = TINY_SNAC_CONFIG if args.tiny else SNAC_24KHZ_CONFIG
    print(f"building a random {'tiny' if args.tiny else '3B'} Orpheus on {device} ({dtype}) ...", flush=True)
    built = time.perf_counter()
    model = on_device(lambda: random_llama(llama_config, dtype=dtype), device, dtype).eval()
    # SNAC stays float32, as the engine's loader keeps it (load_snac).
    snac = on_device(lambda: random_snac(snac_config), device, torch.float32)
    if device.type == "cuda":
        torch.cuda.synchronize()
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    settings = OrpheusSettings(
        engine="transformers",
        device=str(device),
        dtype=str(dtype).removeprefix("torch."),
        max_phrase_tokens=args.tokens,
        static_cache=args.static_cache,
        test_audio_frames_only=True,
        max_sessions=max(args.streams, default=1),
    )
    preloaded = (model, byte_tokenizer(), snac)
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "torch": torch.__version__,
        "model": "tiny" if args.tiny else "orpheus-3b (random weights)",
        "dtype": str(dtype).removeprefix("torch."),
        "weight_gb": round(weight_bytes / 1e9, 2),
        "build_s": round(time.perf_counter() - built, 1),
        "max_phrase_tokens": args.tokens,
        "streams": {"turn_text": TURN_TEXT, "levels": []},
    }
    bw = bandwidth(result["device"])
    bound = bw / weight_bytes if bw else None
    if bound:
        result["bandwidth_bound_tokens_per_s"] = round(bound, 1)
    save(args.json, result)

    started = time.perf_counter()
    engine = TransformersEngine(settings, preloaded=preloaded)
    await engine.start()  # the compile warm-up, where the device uses one
    result["streams"].update(
        static_cache=engine.static_cache, start_s=round(time.perf_counter() - started, 1)
    )
    print(
        f"engine started in {result['streams']['start_s']} s (static cache {engine.static_cache})", flush=True
    )
    save(args.json, result)
    try:
        await streams_sweep(engine, settings, args, result)
        if args.repeats:
            result["single"] = [await single_stream(engine, args.repeats, bound)]
            print(f"single: {json.dumps(result['single'][-1])}", flush=True)
            save(args.json, result)
    finally:
        await engine.close()
    if args.repeats and engine.static_cache:
        eager = TransformersEngine(settings.model_copy(update={"static_cache": "off"}), preloaded=preloaded)
        await eager.start()
        try:
            result["single"].append(await single_stream(eager, args.repeats, bound))
            print(f"single: {json.dumps(result['single'][-1])}", flush=True)
            save(args.json, result)
        finally:
            await eager.close()
    if args.sweep_streams:
        result["first_audio_sweep"] = {}
        await first_audio_sweep(args, settings, preloaded, result)
    return result


def save(path: str, result: dict[str, Any]) -> None:
    """Written after every step: a run stopped by a time limit keeps what it measured."""
    with open(path, "w") as f:
        json.dump(result, f, indent=2)


async def first_audio_sweep(
    args: argparse.Namespace,
    settings: OrpheusSettings,
    preloaded: tuple[Any, Any, Any],
    result: dict[str, Any],
) -> None:
    """Time to first audio p50/p95 per load level, first-audio priority off then on (same weights)."""
    workload = Workload(turns=args.sweep_turns, phrases=2, max_pause_s=1.0)
    out = result["first_audio_sweep"]
    out.update(tokens_per_phrase=args.sweep_tokens, workload=vars(workload))
    for priority in args.sweep_priority:
        update = {
            "max_phrase_tokens": args.sweep_tokens,
            "first_audio_priority": priority == "on",
            "max_sessions": max(args.sweep_streams),
        }
        engine = TransformersEngine(settings.model_copy(update=update), preloaded=preloaded)
        await engine.start()
        try:
            out[priority] = levels = []
            for streams in args.sweep_streams:
                levels.append(await run_level(engine, streams, workload))
                print(f"first audio, priority {priority}: {json.dumps(levels[-1])}", flush=True)
                save(args.json, result)
        finally:
            await engine.close()


def part_budget_s(margin_s: float) -> float:
    """The GPU suite's limit for this part (GPU_SUITE_PART_LIMIT_S) less ``margin_s``; else no limit."""
    limit = os.environ.get("GPU_SUITE_PART_LIMIT_S")
    return float(limit) - margin_s if limit else float("inf")


def levels(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny model (smoke test on CPU)")
    parser.add_argument(
        "--tokens", type=int, default=7 * 41, help="ceiling of audio tokens per phrase (41 frames = 3.5 s)"
    )
    parser.add_argument("--streams", default="1,4,16,32,64", type=levels, help="streams sweep levels")
    parser.add_argument(
        "--repeats", type=int, default=3, help="single-stream runs per path (0 skips the single-stream step)"
    )
    parser.add_argument(
        "--static-cache", default="auto", choices=["on", "off", "auto"], help="auto: the device's default"
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=part_budget_s(margin_s=40),
        help="no sweep level starts that would end past this many seconds from the start "
        "(default: bench/gpu_suite.sh's limit for the part less 40 s for the single-stream step, else none)",
    )
    parser.add_argument(
        "--sweep-streams", default=[], type=levels, help="first-audio sweep load levels, e.g. 1,4,16 (off)"
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
    args.started = time.perf_counter()
    save(args.json, asyncio.run(main(args)))
    print(f"wrote {args.json}")
