"""Voxtral end-of-turn latency and decode speed: utterance length × reply mode × sessions.

Full-size, randomly initialised models (``--size full``: the real Voxtral Mini
3B 2507 and Mini 4B Realtime shapes, built in memory; weights' values do not
change compute cost) on the transformers engine. For 1, 5 and 15 s utterances
in ``audio`` and ``stream`` mode, at 1 and 8 concurrent sessions: end_of_turn →
first reply token (p50 / max over the sessions and ``--turns`` rounds), and
decode tokens/s per session after the first token.

    python bench/voxtral_latency.py --size full --device cuda   # on a GPU: the real figures
    python bench/voxtral_latency.py                             # tiny random models on CPU: a smoke run

The per-turn mechanics (realtime transcription at real-time pace, the reply)
are bench/voxtral_modes.py's; run from the repository root. The engine runs its
default path for the device (on CUDA the static cache and its compiled decode
step, warmed up in ``start()``; concurrent sessions take turns on it). The JSON
is rewritten after every cell (a run cut by a time limit keeps what it
measured), and a cell whose cost, extrapolated from the one before, would pass
``--budget-s`` is recorded as skipped, never started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from typing import Any

from voxtral_modes import build_engine, stream_turn, utterance

from voxmesh.services.voxtral.engine import Message, Sampling
from voxmesh.services.voxtral.transformers_engine import TransformersEngine


async def timed_reply(engine: TransformersEngine, user: Message, sampling: Sampling) -> dict[str, float]:
    started = time.perf_counter()
    first = None
    generated = 0
    async for delta in engine.generate([user], sampling):
        if first is None:
            first = time.perf_counter()
        if delta.finish_reason is not None:
            generated = delta.generated_tokens
    ended = time.perf_counter()
    first = first or ended
    decode_s = ended - first
    return {
        "first_token_s": first - started,
        "decode_tokens_per_s": (generated - 1) / decode_s if generated > 1 and decode_s > 0 else 0.0,
    }


async def one_turn(
    engine: TransformersEngine, mode: str, seconds: float, sampling: Sampling
) -> dict[str, float]:
    audio = utterance(seconds)
    if mode == "audio":
        return await timed_reply(engine, Message("user", audio=audio), sampling)
    # stream: transcribe at real-time pace; the reply's first token counts from end_of_turn.
    turn = await stream_turn(engine, audio, Sampling(1, sampling.temperature, sampling.top_p))
    reply = await timed_reply(engine, Message("user", text="hello there"), sampling)
    return {
        "first_token_s": turn["transcript_tail_s"] + reply["first_token_s"],
        "decode_tokens_per_s": reply["decode_tokens_per_s"],
    }


def save(args: argparse.Namespace, report: dict[str, Any]) -> None:
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)


async def run(args: argparse.Namespace, report: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = report["rows"]
    sampling = Sampling(args.reply_tokens, 1.0, 0.95)
    with tempfile.TemporaryDirectory() as tmp:
        built = time.perf_counter()
        engine = await build_engine(args, tmp, max_sessions=max(args.sessions))
        report["static_cache"] = bool(getattr(engine, "static_cache", False))
        await one_turn(engine, "audio", 1.0, sampling)  # warm-up
        report["start_s"] = round(time.perf_counter() - built, 1)
        save(args, report)
        last: tuple[float, int] | None = None  # (wall s, sessions) of the last cell
        for sessions in args.sessions:
            for seconds in args.utterances:
                for mode in ("audio", "stream"):
                    left = args.budget_s - (time.perf_counter() - args.started)
                    # Sessions take turns on the model: a cell costs about sessions × one turn.
                    estimate = last[0] * sessions / last[1] if last else 0.0
                    if last and estimate > left:
                        rows.append(
                            {
                                "sessions": sessions,
                                "utterance_s": seconds,
                                "mode": mode,
                                "skipped": f"estimated {estimate:.0f} s > {left:.0f} s left",
                            }
                        )
                        print(json.dumps(rows[-1]), flush=True)
                        save(args, report)
                        continue
                    cell_started = time.perf_counter()
                    runs: list[dict[str, float]] = []
                    for _ in range(args.turns):
                        runs += await asyncio.gather(
                            *(one_turn(engine, mode, seconds, sampling) for _ in range(sessions))
                        )
                    first = [1000 * r["first_token_s"] for r in runs]
                    row = {
                        "sessions": sessions,
                        "utterance_s": seconds,
                        "mode": mode,
                        "first_token_ms_p50": round(statistics.median(first), 1),
                        "first_token_ms_max": round(max(first), 1),
                        "decode_tokens_per_s_p50": round(
                            statistics.median(r["decode_tokens_per_s"] for r in runs), 1
                        ),
                    }
                    rows.append(row)
                    last = (time.perf_counter() - cell_started, sessions)
                    print(json.dumps(row), flush=True)
                    save(args, report)
        await engine.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="", help="Voxtral 2507 checkpoint dir (default: random, --size)")
    parser.add_argument("--realtime-model", default="", help="Voxtral Realtime checkpoint dir")
    parser.add_argument("--size", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument(
        "--utterances", type=lambda s: [float(x) for x in s.split(",")], default=[1.0, 5.0, 15.0]
    )
    parser.add_argument("--sessions", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8])
    parser.add_argument("--turns", type=int, default=2, help="rounds per cell")
    parser.add_argument("--reply-tokens", type=int, default=32)
    parser.add_argument("--delay-ms", type=int, default=480)
    limit = os.environ.get("GPU_SUITE_PART_LIMIT_S")  # set by bench/gpu_suite.sh
    parser.add_argument(
        "--budget-s",
        type=float,
        default=float(limit) - 15 if limit else float("inf"),
        help="no cell starts that would end past this many seconds from the start "
        "(default: bench/gpu_suite.sh's limit for the part less 15 s, else none)",
    )
    parser.add_argument("--json", default="bench/results/voxtral-latency.json")
    args = parser.parse_args()
    args.started = time.perf_counter()
    report: dict[str, Any] = {"args": {k: v for k, v in vars(args).items() if k != "started"}, "rows": []}
    save(args, report)
    rows = asyncio.run(run(args, report))
    print("\n| sessions | utterance | mode | first token p50 / max (ms) | decode tok/s p50 |")
    print("| ---: | ---: | --- | --- | ---: |")
    for r in rows:
        if "skipped" in r:
            continue
        print(
            f"| {r['sessions']} | {r['utterance_s']:g} s | {r['mode']} | "
            f"{r['first_token_ms_p50']} / {r['first_token_ms_max']} | {r['decode_tokens_per_s_p50']} |"
        )
    save(args, report)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
