"""Smart Turn on a labelled set: complete vs cut utterances, and the trade-off of each threshold.

The set: Piper sentences (complete, and cut at a word end in their middle) and
CMU's recorded human speech (the whole recording to its last word = complete;
cut at a word end before it = cut, in the middle of a sentence or a digit
string), each followed by the judging pause of room noise (recorded) or
silence (Piper). For every threshold: the share of complete utterances that end
at the first judgement (the rest wait longer: v2v), and the share of cut ones
that end there too (a split turn). Labels are by construction, not by ear.

    .venv/bin/python -m bench.end_of_turn_curve [--pause-ms 150] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from bench.end_of_speech import PIPER_SENTENCES
from bench.end_of_turn import _quietest_middle_point
from tests.recorded_speech import RATE, leading_noise, levels_db, load, looped, recordings, word_ends
from voxmesh.services.vad.smart_turn import SmartTurnModel

MODEL = ".tools/models/smart-turn-v3.2-cpu.onnx"
MORE_PIPER = (
    "Please tell me about the weather today.",
    "Can you set a timer for ten minutes?",
    "How far is the nearest train station from here?",
    "What is the capital of Australia?",
    "Play some relaxing music in the living room.",
    "Tell me a joke about cats.",
    "Turn off the lights in the kitchen please.",
    "When does the pharmacy on Main Street close?",
    "Is it going to rain this weekend in London?",
    "Send a message to Anna saying I will be late.",
    "Find me a recipe for chocolate chip cookies.",
    "How long does it take to boil an egg?",
)


def labelled(pause_s: float) -> list[tuple[str, str, np.ndarray]]:
    """(source, label, audio ending with the judging pause)."""
    from tests.piper_speech import piper_speak

    out = []
    for text in PIPER_SENTENCES + MORE_PIPER:
        audio = piper_speak(text, RATE)
        db = levels_db(audio)
        voiced = np.flatnonzero(db > db.max() - 40)
        whole = audio[: (voiced[-1] + 1) * (RATE // 100)]
        pause = np.zeros(int(pause_s * RATE), np.float32)
        out.append(("piper", "complete", np.concatenate([whole, pause])))
        # Cut at the quietest point of the middle third: between two words, mid-sentence.
        out.append(("piper", "cut", np.concatenate([whole[: _quietest_middle_point(whole)], pause])))
    for name in recordings():
        audio = load(name)
        noise = leading_noise(audio)
        noise_db = float(10 * np.log10(np.mean(noise * noise) + 1e-10))
        ends = word_ends(audio, noise_db)
        if len(ends) < 2:
            continue
        room = looped(noise, int(pause_s * RATE))
        out.append(("recorded", "complete", np.concatenate([audio[: ends[-1]], room])))
        for end in ends[:-1]:
            if end > 0.8 * RATE:  # at least a few words before the cut
                out.append(("recorded", "cut", np.concatenate([audio[:end], room])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pause-ms", type=int, default=150, help="the judging pause (default 150)")
    parser.add_argument("--json", default="bench/results/end_of_turn_curve.json")
    args = parser.parse_args()
    model = SmartTurnModel.load(MODEL)
    rows = []
    seconds = []
    for source, label, audio in labelled(args.pause_ms / 1000):
        began = time.perf_counter()
        p = model.probability(audio, RATE)
        seconds.append(time.perf_counter() - began)
        rows.append({"source": source, "label": label, "p": round(p, 4)})
    print(f"{len(rows)} utterances; model call p50 {1000 * np.median(seconds):.0f} ms")
    print("| source | threshold | complete ended at the first judgement | cut ended there (split) |")
    print("| --- | ---: | ---: | ---: |")
    curve = []
    for source in ("recorded", "piper", "all"):
        chosen = [r for r in rows if source in ("all", r["source"])]
        complete = [r["p"] for r in chosen if r["label"] == "complete"]
        cut = [r["p"] for r in chosen if r["label"] == "cut"]
        for t in (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9):
            c = sum(p >= t for p in complete)
            s = sum(p >= t for p in cut)
            curve.append({"source": source, "threshold": t, "complete_ended": c, "complete": len(complete),
                          "cut_ended": s, "cut": len(cut)})
            print(f"| {source} | {t} | {c}/{len(complete)} | {s}/{len(cut)} |")
    with open(args.json, "w") as f:
        json.dump({"pause_ms": args.pause_ms, "rows": rows, "curve": curve}, f, indent=1)


if __name__ == "__main__":
    main()
