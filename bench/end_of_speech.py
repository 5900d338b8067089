"""How far vad's end of speech lands from the last voiced sample, before and after the refinement.

Every case has a known last voiced sample: CMU's recordings cut inside a word
with their own room noise after (tests/recorded_speech.py), and Piper sentences
(natural end: the last 10 ms block within 40 dB of the sentence's loudest,
digital silence after; and cut inside the last loud word, with a recording's
room noise under and after the voice). Frames are classified by the real webrtcvad engine; the end is the
``SpeechEnded.last_voiced_sample`` the vad service would send, with the
refinement (:mod:`voxmesh.services.vad.voice_edge`) and without it (the
detector's frames alone, as before issue 20).

    .venv/bin/python -m bench.end_of_speech [--hangover-ms 500]
"""

from __future__ import annotations

import argparse
import asyncio

import numpy as np

from tests.recorded_speech import RATE, leading_noise, levels_db, load, looped, placed_ends, recordings
from voxmesh.audio import float_to_pcm16
from voxmesh.services.vad.end_of_turn import Endpointer
from voxmesh.services.vad.segmenter import Segmenter, SpeechEnded
from voxmesh.services.vad.webrtcvad_engine import WebRtcVadEngine
from voxmesh.v1 import common_pb2

PIPER_SENTENCES = (
    "What time is it?",
    "I'd like to book a table for four.",
    "Remind me to call my sister tomorrow morning.",
    "Could you translate good morning into Spanish?",
    "Set a timer for ten minutes.",
    "How far away is the moon?",
    "Book me a flight to Boston on Friday.",
    "What's the weather like in Paris?",
)


async def ends(audio: np.ndarray, hangover_ms: int, refined: bool) -> list[int]:
    """Every SpeechEnded.last_voiced_sample for ``audio``."""
    classifier = WebRtcVadEngine().classifier(RATE, common_pb2.VAD_SENSITIVITY_MEDIUM)
    per_ms = RATE // 1000
    segmenter = Segmenter(300 * per_ms, hangover_ms * per_ms, 90 * per_ms)
    endpointer = Endpointer(segmenter, RATE, classifier.frame_samples)
    pcm = float_to_pcm16(audio)
    size = 2 * classifier.frame_samples
    out = []
    for offset in range(0, len(pcm) - size + 1, size):
        frame = pcm[offset : offset + size]
        voiced = classifier.is_speech(frame)
        if refined:
            event = await endpointer.feed(frame, voiced)
        else:
            event = segmenter.feed(voiced, classifier.frame_samples)
        if isinstance(event, SpeechEnded):
            out.append(event.last_voiced_sample)
    return out


async def error_ms(audio: np.ndarray, last_voiced: int, hangover_ms: int, refined: bool) -> float | None:
    """The end nearest the true one, minus it, in ms; None when speech never ended."""
    found = await ends(audio, hangover_ms, refined)
    if not found:
        return None
    return (min(found, key=lambda e: abs(e - last_voiced)) - last_voiced) * 1000 / RATE


def piper_cases() -> list[tuple[str, np.ndarray, int]]:
    from tests.piper_speech import piper_speak

    room = leading_noise(load("numbers.raw"))
    room_db = float(levels_db(room).mean())
    cases = []
    for text in PIPER_SENTENCES:
        audio = piper_speak(text, RATE)
        db = levels_db(audio)
        last = int(np.flatnonzero(db > db.max() - 40)[-1] + 1) * (RATE // 100)
        cases.append((f"piper natural: {text}", np.concatenate([audio, np.zeros(RATE, np.float32)]), last))
        # Cut where the voice stands 20 dB clear of the room, as the recordings are.
        loud = np.flatnonzero(db > room_db + 20)
        cut = int(loud[-1] + 1) * (RATE // 100) - 37
        # The room is under the voice too, as a microphone hears it.
        voice = np.concatenate([np.zeros(RATE // 2, np.float32), audio[:cut], np.zeros(2 * RATE, np.float32)])
        noisy = voice + looped(room, voice.size)
        cases.append((f"piper cut, in room noise: {text}", noisy, RATE // 2 + cut))
    return cases


def summary(label: str, errors: list[float | None]) -> str:
    found = np.array([e for e in errors if e is not None])
    within = int(np.sum(np.abs(found) <= 10)) if found.size else 0
    never = sum(e is None for e in errors)
    if not found.size:
        return f"| {label} | {len(errors)} | 0 | - | - | - | {never} |"
    return (
        f"| {label} | {len(errors)} | {within} | {np.median(found):+.0f} | {found.min():+.0f} | "
        f"{found.max():+.0f} | {never} |"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hangover-ms", type=int, default=500)
    args = parser.parse_args()
    human = [
        (f"{p.name}@{p.last_voiced}", p.audio, p.last_voiced) for n in recordings() for p in placed_ends(n)
    ]
    piper = piper_cases()
    print("| cases | n | within 10 ms | error p50 ms | min | max | never ended |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, cases in (("recorded human speech, room noise", human), ("Piper", piper)):
        for refined in (False, True):
            errors = [await error_ms(audio, last, args.hangover_ms, refined) for _, audio, last in cases]
            print(summary(f"{label}, {'refined (now)' if refined else 'detector frames (before)'}", errors))


if __name__ == "__main__":
    asyncio.run(main())
