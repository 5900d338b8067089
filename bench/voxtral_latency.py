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
are bench/voxtral_modes.py's; run from the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    sampling = Sampling(args.reply_tokens, 1.0, 0.95)
    with tempfile.TemporaryDirectory() as tmp:
        engine = await build_engine(args, tmp, max_sessions=max(args.sessions))
        await one_turn(engine, "audio", 1.0, sampling)  # warm-up
        for sessions in args.sessions:
            for seconds in args.utterances:
                for mode in ("audio", "stream"):
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
                    print(json.dumps(row), flush=True)
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
    parser.add_argument("--json", default="bench/results/voxtral-latency.json")
    args = parser.parse_args()
    rows = asyncio.run(run(args))
    print("\n| sessions | utterance | mode | first token p50 / max (ms) | decode tok/s p50 |")
    print("| ---: | ---: | --- | --- | ---: |")
    for r in rows:
        print(
            f"| {r['sessions']} | {r['utterance_s']:g} s | {r['mode']} | "
            f"{r['first_token_ms_p50']} / {r['first_token_ms_max']} | {r['decode_tokens_per_s_p50']} |"
        )
    with open(args.json, "w") as f:
        json.dump({"args": vars(args), "rows": rows}, f, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
