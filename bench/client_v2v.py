"""Voice-to-voice as a client measures it, from its own last voiced sample, per turn-taking configuration.

Part (e) of the end-of-turn measurements (bench/end_of_turn.py has (a)-(d)).
A client written from the protos (voxmesh.client) streams each utterance like a
live microphone: a 20 ms chunk goes out when its last sample is "captured"
(real-time pace), room noise or silence before and after. It knows where the
voice ends (a recording's: where vad's definition of voice, runs of 10 ms
blocks 12 dB over the room's median, last holds inside its last aligned word,
tests/recorded_speech.py ``spoken``; Piper sentences end at their last block
within 40 dB of their peak), so

    client v2v = first reply AudioOut received − when the last voiced sample was spoken

and it compares that with the gateway's own TurnComplete voice-to-voice.

Utterances: CMU's recordings as spoken (LibriVox sentences, cards, digits,
unedited: the voice's own decay and room after the last word) and Piper
sentences, complete; and a paused set (a 300-700 ms pause inserted between two
words mid-sentence, at the quietest 10 ms near their aligned boundary: silence
in Piper, room noise in the recordings): the client counts utterances answered
as more than one turn (split). The room around a recording is noise with its
own room's level and spectrum (``room_tone``), not a loop of it: a looped
snippet is rhythmic enough for webrtcvad to call it speech.

The mesh is the CPU profile as ``voxmesh up`` runs it (one process per
service), with each configuration's flags:

    .venv/bin/python -m bench.client_v2v [--configs default,silence] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from typing import Any

import numpy as np

from bench.end_of_speech import PIPER_SENTENCES
from bench.end_of_turn import SENTENCES, _quietest_middle_point
from tests.recorded_speech import RATE, levels_db, recordings, room_tone, spoken
from voxmesh.client import AsyncSession, AudioOut, TurnComplete
from voxmesh.client.errors import VoxmeshClientError
from voxmesh.mesh import Mesh
from voxmesh.turn_taking_defaults import find_smart_turn_model, stage_flags

CHUNK = RATE // 50  # 20 ms

#: name → (what it is, extra flags per service). "before" rows use the detector's
#: frames for the end of speech (--no-voice-edge), as the last round measured.
CONFIGS: dict[str, tuple[str, dict[str, list[str]]]] = {
    "default": ("the shipped turn-taking (voxmesh up)", stage_flags("smart-turn")),
    "silence": ("silence-only endpointing (voxmesh up --end-of-turn silence)", stage_flags("silence")),
    # Points of the trade-off curve around the default (v2v against splits).
    "judged-at-100": (
        "the default, judged at 100 ms",
        {
            **stage_flags("smart-turn"),
            "vad": [*stage_flags("smart-turn")["vad"], "--turn-complete-hangover-ms", "100"],
        },
    ),
    "threshold-0.5": (
        "the default, P >= 0.5 ends at the judged pause",
        {
            **stage_flags("smart-turn"),
            "vad": [*stage_flags("smart-turn")["vad"], "--turn-complete-threshold", "0.5"],
        },
    ),
    "no-doubtful-band": (
        "the default without the doubtful band (P < 0.9 waits the 700 ms maximum)",
        {
            **stage_flags("smart-turn"),
            "vad": [*stage_flags("smart-turn")["vad"], "--turn-doubtful-hangover-ms", "0"],
        },
    ),
    "doubtful-400": (
        "the default plus a doubtful band: 0.1 <= P < 0.9 ends at 400 ms",
        {
            **stage_flags("smart-turn"),
            "vad": [*stage_flags("smart-turn")["vad"], "--turn-doubtful-hangover-ms", "400"],
        },
    ),
    "max-500": (
        "the default with a 500 ms maximum",
        {
            **stage_flags("smart-turn"),
            "vad": [*stage_flags("smart-turn")["vad"], "--turn-incomplete-hangover-ms", "500"],
        },
    ),
    "silence-300": (
        "silence-only with a 300 ms hangover",
        {**stage_flags("silence"), "vad": [*stage_flags("silence")["vad"], "--hangover-ms", "300"]},
    ),
    "before-default": (
        "last round's make run: silence 500 ms, hold 1000 ms, detector frames",
        {"vad": ["--no-voice-edge"], "gateway": []},
    ),
    "before-low-latency": (
        "last round's README low-latency flags: Smart Turn 150 ms at P>=0.9, max 1000, speculation 100, hold, "
        "detector frames",
        {
            "vad": [
                "--no-voice-edge",
                "--end-of-turn",
                "smart-turn",
                "--smart-turn-model",
                find_smart_turn_model() or "",
                "--turn-complete-hangover-ms",
                "150",
                "--turn-complete-threshold",
                "0.9",
            ],
            "gateway": ["--speculate-after-ms", "100"],
        },
    ),
}


def _piper(text: str) -> tuple[np.ndarray, int]:
    from tests.piper_speech import piper_speak

    audio = piper_speak(text, RATE)
    db = levels_db(audio)
    last = int(np.flatnonzero(db > db.max() - 40)[-1] + 1) * (RATE // 100)
    return audio[:last], last


def utterances() -> dict[str, list[tuple[str, np.ndarray, int, np.ndarray]]]:
    """Kind → [(label, voice, last voiced sample, room noise to put around it)]."""
    complete, paused = [], []
    quiet = np.zeros(RATE // 10, np.float32)
    for i, text in enumerate(SENTENCES[:12] + PIPER_SENTENCES[:4]):
        voice, last = _piper(text)
        complete.append((f"piper: {text}", voice, last, quiet))
        if i < 12:
            cut = _quietest_middle_point(voice)
            pause = np.zeros(int((0.3 + 0.4 * i / 11) * RATE), np.float32)
            paused.append(
                (f"piper paused: {text}", np.concatenate([voice[:cut], pause, voice[cut:]]), 0, quiet)
            )
    for name in recordings():
        rec = spoken(name)
        # The recording as spoken, its own room and the voice's decay after the last word.
        voice = rec.audio[rec.voice_start :]
        last = rec.voice_end - rec.voice_start
        complete.append((f"recorded: {name}", voice, last, rec.room))
        middle = [
            b - rec.voice_start for b in rec.between_words if 0.3 * last < b - rec.voice_start < 0.8 * last
        ]
        if middle and len(paused) < 24:
            cut = middle[len(middle) // 2]
            gap = room_tone(rec.room, int((0.3 + 0.4 * (len(paused) % 5) / 4) * RATE), seed=len(paused))
            paused.append(
                (f"recorded paused: {name}", np.concatenate([voice[:cut], gap, voice[cut:]]), 0, rec.room)
            )
    return {"complete": complete, "paused": paused}


async def one_utterance(address: str, voice: np.ndarray, last: int, room: np.ndarray) -> dict[str, Any]:
    """Stream lead room, the voice, 1.5 s of room; the client's and the gateway's figures."""
    lead = room_tone(room, int(0.4 * RATE), seed=1)
    audio = np.concatenate([lead, voice, room_tone(room, int(1.5 * RATE), seed=2)])
    last_at_sample = lead.size + last
    first_audio: dict[int, float] = {}
    turns: list[TurnComplete] = []
    async with await AsyncSession.connect(address, sample_rate_hz=RATE) as session:

        async def read() -> None:
            async for event in session.events():
                if isinstance(event, AudioOut) and event.turn_id not in first_audio:
                    first_audio[event.turn_id] = time.perf_counter()
                elif isinstance(event, TurnComplete):
                    turns.append(event)

        reader = asyncio.create_task(read())
        start = time.perf_counter()
        for i in range(0, audio.size, CHUNK):
            # A microphone hands over a chunk once its last sample is captured.
            due = start + (i + CHUNK) / RATE
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            await session.send_audio(audio[i : i + CHUNK])
        await session.end_input()
        await reader
    spoken_end = start + last_at_sample / RATE
    out: dict[str, Any] = {"turns": len(turns)}
    if turns and last:
        first = turns[-1]
        if first.turn_id in first_audio:
            out["client_v2v_ms"] = 1000 * (first_audio[first.turn_id] - spoken_end)
            out["gateway_v2v_ms"] = first.latency.voice_to_voice_ms
            out["vad_decision_ms"] = round(first.latency.vad_decision_ms, 1)
            out["response_ms"] = round(first.latency.response_latency_ms, 1)
    return out


async def _measured(address: str, voice: np.ndarray, last: int, room: np.ndarray) -> dict[str, Any]:
    """:func:`one_utterance`, with a refused or failed session recorded (and counted), not fatal."""
    try:
        return await one_utterance(address, voice, last, room)
    except VoxmeshClientError as exc:
        return {"turns": 0, "error": str(exc)}


def _pct(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "n": len(values),
        "p50": round(float(np.percentile(values, 50)), 1),
        "p95": round(float(np.percentile(values, 95)), 1),
        "max": round(float(np.max(values)), 1),
    }


async def run_config(
    name: str, sets: dict[str, list[Any]], session_counts: tuple[int, ...] = (1, 4)
) -> dict[str, Any]:
    _, flags = CONFIGS[name]
    mesh = Mesh.build({"voxtral": "echo", "orpheus": "espeak"}, extra_args=flags)
    mesh.start(300)
    try:
        address = mesh.gateway.address
        out: dict[str, Any] = {}
        for sessions in session_counts:
            rows: list[dict[str, Any]] = []
            complete = sets["complete"]

            async def user(
                i: int, rows: list[dict[str, Any]] = rows, n: int = sessions, todo: list[Any] = complete
            ) -> None:
                await asyncio.sleep(0.5 * i)  # not in lockstep
                for label, voice, last, room in todo[i::n]:
                    rows.append({"label": label, **await _measured(address, voice, last, room)})

            await asyncio.gather(*(user(i) for i in range(sessions)))
            out[f"{sessions}/rows"] = rows
            timed = [r for r in rows if "client_v2v_ms" in r]
            for source in ("recorded", "piper", ""):
                chosen = [r for r in timed if r["label"].startswith(source)]
                out[f"{sessions}/{source or 'all'}"] = {
                    "client_v2v_ms": _pct([r["client_v2v_ms"] for r in chosen]),
                    "gateway_minus_client_ms": _pct(
                        [r["gateway_v2v_ms"] - r["client_v2v_ms"] for r in chosen]
                    ),
                    "not_answered_as_one_turn": sum(
                        r["turns"] != 1 for r in rows if r["label"].startswith(source)
                    ),
                    "errors": sum("error" in r for r in rows if r["label"].startswith(source)),
                }
            print(name, sessions, json.dumps(out[f"{sessions}/all"]), flush=True)
        split = []
        errors = []
        for label, voice, _last, room in sets["paused"]:
            row = await _measured(address, voice, 0, room)
            if "error" in row:
                errors.append(f"{label}: {row['error']}")
            elif row["turns"] > 1:
                split.append(label)
        out["paused"] = {
            "utterances": len(sets["paused"]),
            "split": len(split),
            "split_labels": split,
            "errors": errors,
        }
        print(name, "paused", json.dumps(out["paused"]), flush=True)
        return out
    finally:
        mesh.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--json", default="bench/results/client_v2v.json")
    parser.add_argument(
        "--sessions", default="1,4", help="concurrent sessions for the complete set (default 1,4)"
    )
    args = parser.parse_args()
    sets = utterances()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line), "")
    report: dict[str, Any] = {
        "machine": {"cpu": cpu or platform.processor(), "cores": os.cpu_count(), "load": os.getloadavg()},
        "utterances": {k: len(v) for k, v in sets.items()},
    }
    print(json.dumps(report), flush=True)
    for name in args.configs.split(","):
        counts = tuple(int(n) for n in args.sessions.split(","))
        report[name] = {"what": CONFIGS[name][0], **asyncio.run(run_config(name, sets, counts))}
        report[name]["load_after"] = os.getloadavg()
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
