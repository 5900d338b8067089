"""Smart Turn on a labelled set: complete vs cut utterances, and the trade-off of each threshold.

The set: Piper sentences (complete, and cut at a word end in their middle) and
CMU's recorded human speech (the whole recording to its last voiced sample =
complete; cut between two earlier words, at the quietest 10 ms near their
aligned boundary = cut, in the middle of a sentence or a digit string), each
followed by the judging pause of the recording's room (``room_tone``) or
silence (Piper). For every threshold: the share of complete utterances that end
at the first judgement (the rest wait longer: v2v), and the share of cut ones
that end there too (a split turn). Labels are by construction, not by ear.

Then what the words add, as the gateway sees them: each utterance transcribed
by the CPU profile's transcriber (the echo's pocketsphinx decoder, with its
last word's posterior), judged by the unfinished-word list (gateway.unfinished_words),
by the confidence rule (a doubtful last word against a sure sound is not
trusted), and by a trigram language model's P(sentence ends | last two words)
(pocketsphinx's own en-us model: a candidate "reads finished" signal measured
here, not shipped; BENCHMARKS.md says why).

    .venv/bin/python -m bench.end_of_turn_curve [--pause-ms 150] [--json FILE] [--model FILE.onnx]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

import numpy as np

from bench.end_of_speech import PIPER_SENTENCES
from bench.end_of_turn import _quietest_middle_point
from tests.recorded_speech import RATE, levels_db, recordings, room_tone, spoken
from voxmesh.audio import float_to_pcm16
from voxmesh.gateway.unfinished_words import SURE_SOUND, sounds_unfinished
from voxmesh.services.vad.smart_turn import SmartTurnModel
from voxmesh.services.voxtral.pocketsphinx_pool import make_decoder

MODEL = ".tools/models/smart-turn-v3.2-cpu.onnx"
#: Longer pauses at which :func:`judged_again` asks the model again.
LATER_PAUSES_MS = (250, 350, 450, 600)
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
        rec = spoken(name)
        room = room_tone(rec.room, int(pause_s * RATE), seed=3)
        out.append(
            ("recorded", "complete", np.concatenate([rec.audio[rec.voice_start : rec.voice_end], room]))
        )
        for between in rec.between_words:
            if between - rec.voice_start > 0.8 * RATE:  # at least a few words before the cut
                out.append(("recorded", "cut", np.concatenate([rec.audio[rec.voice_start : between], room])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pause-ms", type=int, default=150, help="the judging pause (default 150)")
    parser.add_argument("--json", default="bench/results/end_of_turn_curve.json")
    parser.add_argument(
        "--model",
        default=MODEL,
        help=f"a Smart Turn ONNX file (default {MODEL}; older ones ship in older pipecat-ai wheels)",
    )
    args = parser.parse_args()
    model = SmartTurnModel.load(args.model)
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
            curve.append(
                {
                    "source": source,
                    "threshold": t,
                    "complete_ended": c,
                    "complete": len(complete),
                    "cut_ended": s,
                    "cut": len(cut),
                }
            )
            print(f"| {source} | {t} | {c}/{len(complete)} | {s}/{len(cut)} |")
    words = what_the_words_add(rows, [audio for _, _, audio in labelled(args.pause_ms / 1000)])
    later = judged_again(model, rows, args.pause_ms)
    with open(args.json, "w") as f:
        json.dump(
            {"pause_ms": args.pause_ms, "rows": rows, "curve": curve, "words": words, "judged_again": later},
            f,
            indent=1,
        )


def judged_again(model: SmartTurnModel, rows: list[dict[str, Any]], pause_ms: int) -> list[dict[str, Any]]:
    """The model's P for the same utterances after longer pauses: whether a second judgement helps.

    Adds ``p_later`` (P at each of :data:`LATER_PAUSES_MS`) to each row; prints, per pause, how many
    of the utterances unsure at the first judgement (P < 0.9) pass 0.5 then, complete and cut.
    """
    longest = max(LATER_PAUSES_MS)
    for row, (_, _, audio) in zip(rows, labelled(longest / 1000), strict=True):
        voice = audio.size - longest * RATE // 1000
        row["p_later"] = [
            round(model.probability(audio[: voice + pause * RATE // 1000], RATE), 4)
            for pause in LATER_PAUSES_MS
        ]
    unsure = [r for r in rows if r["p"] < SURE_SOUND]
    print(f"\nJudged again (of those under {SURE_SOUND} at {pause_ms} ms: how many reach P >= 0.5 later):")
    print("| pause | complete | cut |")
    print("| ---: | ---: | ---: |")
    out = []
    for i, pause in enumerate(LATER_PAUSES_MS):
        risen = {
            label: sum(r["p_later"][i] >= 0.5 for r in unsure if r["label"] == label)
            for label in ("complete", "cut")
        }
        total = {label: sum(r["label"] == label for r in unsure) for label in ("complete", "cut")}
        out.append({"pause_ms": pause, **{f"{k}_risen": v for k, v in risen.items()}, **total})
        print(f"| {pause} ms | {risen['complete']}/{total['complete']} | {risen['cut']}/{total['cut']} |")
    return out


def _transcribe(decoder: Any, audio: np.ndarray) -> tuple[str, float | None]:
    """What the echo's decoder makes of ``audio`` fed in 20 ms chunks, and its last word's posterior."""
    pcm = float_to_pcm16(audio)
    decoder.start_utt()
    for at in range(0, len(pcm), 640):
        decoder.process_raw(pcm[at : at + 640])
    decoder.end_utt()
    hyp = decoder.hyp()
    heard = [seg for seg in decoder.seg() or () if not seg.word.startswith(("<", "["))]
    return (hyp.hypstr if hyp else ""), (float(heard[-1].prob) if heard else None)


def what_the_words_add(rows: list[dict[str, Any]], audios: list[np.ndarray]) -> dict[str, Any]:
    """Adds each row's words, confidence and LM end probability; prints the table; returns the counts."""
    from pocketsphinx import NGramModel, get_model_path

    lm = NGramModel.readfile(f"{get_model_path()}/en-us/en-us.lm.bin")
    decoder = make_decoder()
    for row, audio in zip(rows, audios, strict=True):
        text, confidence = _transcribe(decoder, audio)
        last_two = text.split()[-2:]
        # NGramModel.prob: log probability (base 1.0001) of the first word given the rest, newest first.
        p_end = math.exp(lm.prob(["</s>", *reversed(last_two)]) * math.log(1.0001)) if last_two else 0.0
        row.update(
            words=text, confidence=confidence, unfinished=sounds_unfinished(text), p_end=round(p_end, 4)
        )
    complete = [r for r in rows if r["label"] == "complete"]
    cut = [r for r in rows if r["label"] == "cut"]
    groups = (("complete", complete), ("cut", cut))
    print(f"\nWhat the words add (P >= {SURE_SOUND}: sure; the rest wait longer):")
    print("| rule | complete | cut |")
    print("| --- | ---: | ---: |")
    held = {k: sum(r["unfinished"] for r in group) for k, group in groups}
    out: dict[str, Any] = {"held": held, "confidence": [], "lm_end": []}
    print(f"| words end unfinished: held | {held['complete']}/{len(complete)} | {held['cut']}/{len(cut)} |")
    for floor in (0.1, 0.2, 0.5):
        # A doubtful last word against a sure sound overrules the hold (gateway.unfinished_words).
        overruled = {
            k: sum(
                r["unfinished"]
                and r["p"] >= SURE_SOUND
                and r["confidence"] is not None
                and r["confidence"] < floor
                for r in group
            )
            for k, group in groups
        }
        out["confidence"].append({"below": floor, **overruled})
        print(
            f"| ... but confidence < {floor} and sure: not held | {overruled['complete']} | {overruled['cut']} |"
        )
    for floor in (0.05, 0.1, 0.15, 0.2, 0.3):
        early = {
            k: sum((not r["unfinished"]) and r["p"] < SURE_SOUND and r["p_end"] >= floor for r in group)
            for k, group in groups
        }
        out["lm_end"].append({"p_end_at_least": floor, **early})
        print(f"| not sure, LM P(end) >= {floor}: would end early | {early['complete']} | {early['cut']} |")
    return out


if __name__ == "__main__":
    main()
