"""Playback gaps of a streamed Orpheus phrase when generation is only just real time.

Feeds Orpheus audio token ids at ``speed`` × real time (7 ids per 85.3 ms
SNAC frame at 1.0×, one id at a time as an engine delivers them) through the
real streaming path (:func:`tokens_to_audio` → :class:`SnacBatcher` →
:class:`SnacDecoder` on a random-weight 24 kHz SNAC; random weights decode
exactly as fast as the real ones) and simulates a client that starts playing
at the first chunk and plays every chunk as soon as the previous one ends.

For each lookahead setting (first chunk, later chunks) and speed it prints the
ids fed before first audio, the first-audio time (from the first id's due
time) and the largest playback gap over all phrases (0 = gap-free).

``--clock virtual`` replays the same window walk on a virtual clock
(:mod:`voxmesh.services.orpheus.playout`) with each window costing what the
real decoder takes for a window of that many frames here (median of 5):
figures that a busy shared machine's scheduler cannot blur.

    python bench/orpheus_pacing.py                          # decoder_dim 256 on CPU
    python bench/orpheus_pacing.py --decoder-dim 1024       # the real 24 kHz SNAC size
    python bench/orpheus_pacing.py --device cuda --decoder-dim 1024
    python bench/orpheus_pacing.py --clock virtual --decoder-dim 1024
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from collections.abc import AsyncGenerator
from typing import Any

import numpy as np
import torch

from voxmesh.services.orpheus.orpheus_tokens import (
    CODES_PER_FRAME,
    END_OF_SPEECH,
    SAMPLES_PER_FRAME,
    SNAC_SAMPLE_RATE_HZ,
    frame_tokens,
)
from voxmesh.services.orpheus.playout import replay
from voxmesh.services.orpheus.random_checkpoint import random_snac
from voxmesh.services.orpheus.snac_batcher import SnacBatcher
from voxmesh.services.orpheus.snac_decoder import SNAC_24KHZ_CONFIG, SnacDecoder
from voxmesh.services.orpheus.token_audio import StreamParams, tokens_to_audio

FRAME_S = SAMPLES_PER_FRAME / SNAC_SAMPLE_RATE_HZ


class PacedIds:
    """Orpheus ids released at ``speed`` × real time; counts what has been fed."""

    def __init__(self, frames: int, speed: float, seed: int) -> None:
        rng = np.random.default_rng(seed)
        codes = rng.integers(0, 4096, (frames, CODES_PER_FRAME))
        self.ids = [t for frame in codes for t in frame_tokens([int(c) for c in frame])] + [END_OF_SPEECH]
        self.interval_s = FRAME_S / CODES_PER_FRAME / speed
        self.fed = 0
        self.t0 = 0.0

    async def feed(self) -> AsyncGenerator[list[int], None]:
        # t0: when the first id would be "sampled"; id i is due at t0 + (i+1) × interval.
        self.t0 = time.perf_counter()
        while self.fed < len(self.ids):
            due = self.t0 + (self.fed + 1) * self.interval_s
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            # Everything due by now (a late wake-up delivers a batch, as a busy engine does).
            now = time.perf_counter()
            n = max(1, min(len(self.ids) - self.fed, int((now - self.t0) / self.interval_s) - self.fed))
            batch = self.ids[self.fed : self.fed + n]
            self.fed += n
            yield batch


def largest_gap_s(chunks: list[tuple[float, int]]) -> float:
    """A client that starts at the first chunk and plays each chunk right after the one before."""
    play_end: float | None = None
    gap = 0.0
    for arrived, samples in chunks:
        if play_end is None:
            play_end = arrived
        gap = max(gap, arrived - play_end)
        play_end = max(play_end, arrived) + samples / SNAC_SAMPLE_RATE_HZ
    return gap


async def one_phrase(
    batcher: SnacBatcher, params: StreamParams, frames: int, speed: float, seed: int
) -> dict[str, float]:
    ids = PacedIds(frames, speed, seed)
    chunks: list[tuple[float, int]] = []
    ids_before_first = 0
    async for chunk in tokens_to_audio(ids.feed(), batcher, params):
        if not chunks:
            ids_before_first = ids.fed
        chunks.append((time.perf_counter(), len(chunk)))
    return {
        "ids_before_first_audio": ids_before_first,
        "first_audio_ms": 1000 * (chunks[0][0] - ids.t0),
        "largest_gap_ms": 1000 * largest_gap_s(chunks),
        "frames_out": sum(n for _, n in chunks) / SAMPLES_PER_FRAME,
    }


def decode_ms(decoder: SnacDecoder, frames: int, repeats: int = 5) -> float:
    window = [tuple([1] * CODES_PER_FRAME)] * frames
    decoder.decode([window], [0])  # type: ignore[list-item]
    started = time.perf_counter()
    for _ in range(repeats):
        decoder.decode([window], [0])  # type: ignore[list-item]
    return 1000 * (time.perf_counter() - started) / repeats


async def main(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config = {**SNAC_24KHZ_CONFIG, "decoder_dim": args.decoder_dim}
    decoder = SnacDecoder(random_snac(config).to(device))
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    costs = {n: round(decode_ms(decoder, n), 1) for n in (2, 5)}
    print(
        f"SNAC 24 kHz, random weights, decoder_dim {args.decoder_dim} on {device} ({args.threads} threads); "
        f"one window decode: 2 frames {costs[2]} ms, 5 frames {costs[5]} ms; a frame is {1000 * FRAME_S:.1f} ms",
        flush=True,
    )
    batcher = SnacBatcher(decoder)
    batcher.start()
    rows = []
    window_costs: dict[int, float] = {}

    def virtual_phrase(params: StreamParams, speed: float) -> dict[str, float]:
        def cost_s(n: int) -> float:
            if n not in window_costs:
                window_costs[n] = statistics.median(decode_ms(decoder, n, 1) for _ in range(5)) / 1000
            return window_costs[n]

        playout = replay(params.new_stream(), args.frames, speed, cost_s, params.hold_first_chunk)
        return {
            "ids_before_first_audio": CODES_PER_FRAME * playout.frames_before_first_audio,
            "first_audio_ms": 1000 * playout.first_audio_s,
            "largest_gap_ms": 1000 * playout.largest_gap_s,
        }

    if args.clock == "virtual":
        # Every window length a phrase can use, measured together (a busy
        # machine's load then weighs on all of them alike).
        for n in range(1, 3 + 8 + 3 + 1):
            window_costs[n] = statistics.median(decode_ms(decoder, n, 1) for _ in range(7)) / 1000
    try:
        for setting in args.lookaheads:
            first, later, *hold = setting.split(",")
            params = StreamParams(
                first_lookahead_frames=int(first),
                lookahead_frames=int(later),
                hold_first_chunk=hold != ["nohold"],
            )
            for speed in args.speeds:
                if args.clock == "virtual":
                    runs = [virtual_phrase(params, speed)]
                else:
                    runs = [
                        await one_phrase(batcher, params, args.frames, speed, seed)
                        for seed in range(args.phrases)
                    ]
                row = {
                    "first_lookahead_frames": params.first_lookahead_frames,
                    "lookahead_frames": params.lookahead_frames,
                    "hold_first_chunk": params.hold_first_chunk,
                    "speed": speed,
                    "ids_before_first_audio": max(r["ids_before_first_audio"] for r in runs),
                    "first_audio_ms_p50": round(float(np.median([r["first_audio_ms"] for r in runs])), 1),
                    "largest_gap_ms": round(max(r["largest_gap_ms"] for r in runs), 1),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        await batcher.close()
    return {
        "machine": machine,
        "clock": args.clock,
        "torch": torch.__version__,
        "decoder_dim": args.decoder_dim,
        "device": str(device),
        "threads": args.threads,
        "frames_per_phrase": args.frames,
        "phrases": args.phrases,
        "window_decode_ms": costs,
        "rows": rows,
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        "| lookahead first / later | first chunk held | speed | ids before first audio "
        "| first audio p50 (ms) | largest gap (ms) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['first_lookahead_frames']} / {r['lookahead_frames']} | "
            f"{'yes' if r['hold_first_chunk'] else 'no'} | {r['speed']}× | "
            f"{r['ids_before_first_audio']} | {r['first_audio_ms_p50']} | {r['largest_gap_ms']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--decoder-dim", type=int, default=256, help="SNAC decoder_dim (1024 = the real model)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--speeds", type=float, nargs="+", default=[1.0, 1.2, 2.0])
    parser.add_argument(
        "--lookaheads",
        nargs="+",
        default=["1,2,nohold", "1,1,nohold", "1,1", "2,2"],
        help="'first,later[,nohold]' lookahead frames to compare (1,2,nohold: the schedule before issue 9)",
    )
    parser.add_argument("--frames", type=int, default=36, help="frames per phrase (36 = 3.1 s)")
    parser.add_argument("--phrases", type=int, default=3, help="phrases per row")
    parser.add_argument(
        "--clock", choices=["wall", "virtual"], default="wall", help="real time, or the virtual playout clock"
    )
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    out = asyncio.run(main(args))
    print(table(out))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
        print(f"wrote {args.json}")
