"""Recorded human speech with a known last voiced sample, for the end-of-speech tests and benches.

The recordings are CMU's own pocketsphinx test data (``make speech-corpus``,
mk/speech_corpus.mk): LibriVox audiobook sentences, a digit string, "go forward
ten meters", card names; 16 kHz mono with the room's noise in them.

Where a human recording's voice ends is not known to the sample (a word fades
into the room), so the end is *placed*: the recording is cut at a sample inside
the loud part of a word that a gap follows, and the room's own noise (the
recording's leading and trailing silence, looped with crossfades) goes after
it. The voice then ends exactly at the cut.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16_000
CORPUS = Path(os.environ.get("VOXMESH_SPEECH_CORPUS", ".tools/speech"))
_BLOCK = RATE // 100
#: A cut goes where a word is this far above the room's noise (dB): clearly voice.
_LOUD_DB = 20.0
#: ... and where at least this much quieter audio follows (a gap between words).
_GAP_BLOCKS = 10
_FADE = 160


def recordings() -> list[str]:
    """Names (paths under the corpus) of every usable recording."""
    if not CORPUS.is_dir():
        raise FileNotFoundError(f"{CORPUS} is missing: run `make speech-corpus`")
    names = [str(p.relative_to(CORPUS)) for p in sorted(CORPUS.glob("librivox/*.wav"))]
    names += [str(p.relative_to(CORPUS)) for p in sorted(CORPUS.glob("cards/*.wav"))]
    return [*names, "numbers.raw", "goforward.raw", "something.raw"]


@functools.cache
def load(name: str) -> np.ndarray:
    """The recording as float32 at 16 kHz."""
    path = CORPUS / name
    if name.endswith(".raw"):
        return np.fromfile(path, dtype="<i2").astype(np.float32) / 32768.0
    audio, rate = sf.read(path, dtype="float32")
    assert rate == RATE, f"{name}: {rate} Hz"
    return np.asarray(audio, dtype=np.float32)


def levels_db(audio: np.ndarray) -> np.ndarray:
    """10 ms block levels in dBFS."""
    n = audio.size // _BLOCK
    blocks = audio[: n * _BLOCK].reshape(n, _BLOCK)
    return np.asarray(10 * np.log10(np.mean(blocks * blocks, axis=1) + 1e-10))


def leading_noise(audio: np.ndarray) -> np.ndarray:
    """The room before the first word: blocks up to 50 ms before the level first rises 15 dB."""
    db = levels_db(audio)
    floor = float(np.median(db[:10]))
    first = int(np.argmax(db > floor + 15))
    return audio[: max(first - 5, 5) * _BLOCK]


def looped(noise: np.ndarray, samples: int) -> np.ndarray:
    """``noise`` repeated to ``samples`` with 10 ms crossfades (no clicks at the seams)."""
    ramp = np.linspace(0.0, 1.0, _FADE, dtype=np.float32)
    piece = noise.astype(np.float32).copy()
    piece[:_FADE] *= ramp
    piece[-_FADE:] *= ramp[::-1]
    out = np.zeros(samples + piece.size, dtype=np.float32)
    step = piece.size - _FADE
    for at in range(0, samples, step):
        out[at : at + piece.size] += piece
    return out[:samples]


@dataclass(frozen=True)
class PlacedEnd:
    """A recording cut where its voice ends, room noise after."""

    name: str
    audio: np.ndarray
    #: One past the last voiced sample.
    last_voiced: int


def word_ends(audio: np.ndarray, noise_db: float) -> list[int]:
    """Samples just inside the end of each loud stretch that a gap follows."""
    db = levels_db(audio)
    loud = db > noise_db + _LOUD_DB
    ends = []
    for i in range(len(db) - 1):
        if loud[i] and not loud[i + 1] and not loud[i + 1 : i + 1 + _GAP_BLOCKS].any() and i > 25:
            ends.append((i + 1) * _BLOCK)
    return ends


def placed_ends(name: str, tail_s: float = 2.0, seed: int = 0) -> list[PlacedEnd]:
    """Every word end of ``name`` placed as the end of speech, ``tail_s`` of its room noise after."""
    audio = load(name)
    noise = leading_noise(audio)
    noise_db = float(10 * np.log10(np.mean(noise * noise) + 1e-10))
    # Cuts off the 10 ms grid, so the test cannot pass by the grid alone.
    rng = np.random.default_rng(seed)
    out = []
    for end in word_ends(audio, noise_db):
        cut = end - int(rng.integers(0, _BLOCK // 2))
        placed = np.concatenate([audio[:cut], looped(noise, int(tail_s * RATE))])
        out.append(PlacedEnd(name, placed, cut))
    return out
