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
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from voxmesh.audio import float_to_pcm16
from voxmesh.services.vad.voice_edge import MIN_RUN_BLOCKS, NOISE_MARGIN_DB

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


def room_tone(noise: np.ndarray, samples: int, seed: int = 0) -> np.ndarray:
    """``samples`` of noise with the level and spectrum of the room in ``noise``, never repeating.

    :func:`looped` repeats a 60-480 ms snippet 2-16 times a second, and webrtcvad
    hears that rhythm as voice (false turns before a recording, a turn that never
    ends after it). Here random-phase noise is shaped by the snippet's spectrum
    instead, so the room is as loud and as coloured but stationary. The spectrum
    and the level are medians (per frequency over 32 ms frames; over 10 ms
    blocks), so a breath or a word's decay caught in the snippet does not become
    part of the room.
    """
    size = 512 if noise.size >= 1024 else 256
    hop = size // 2
    window = np.hanning(size)
    frames = np.lib.stride_tricks.sliding_window_view(noise.astype(np.float64), size)[::hop]
    power = np.median(np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2, axis=0)
    white = np.random.default_rng(seed).standard_normal(samples)
    spectrum = np.fft.rfft(white)
    shape = np.sqrt(np.interp(np.linspace(0, 1, spectrum.size), np.linspace(0, 1, power.size), power))
    shaped = np.fft.irfft(spectrum * shape, samples).astype(np.float32)
    gain_db = float(np.median(levels_db(noise)) - np.median(levels_db(shaped)))
    return (shaped * 10 ** (gain_db / 20)).astype(np.float32)


_TEXT = {"goforward.raw": "go forward ten meters"}


@functools.cache
def word_spans(name: str) -> tuple[tuple[str, int, int], ...]:
    """(word, first sample, one past its last) for each spoken word of ``name``.

    LibriVox: CMU's own alignment, shipped beside the recording. The others:
    pocketsphinx's forced alignment to CMU's transcript (cards, "go forward"),
    or to its own hypothesis where none ships (numbers, something).
    """
    path = CORPUS / name
    if name.startswith("librivox/"):
        aligned = json.loads(path.with_suffix(".json").read_text())["w"]
        return tuple(
            (w["t"], round(w["b"] * RATE), round((w["b"] + w["d"]) * RATE))
            for w in aligned
            if not w["t"].startswith("<")
        )
    pcm = float_to_pcm16(load(name))
    text = _TEXT.get(name) or _cards_transcript().get(Path(name).stem)
    if text is None:
        text = _decoded(pcm).hyp().hypstr
    # Held while its segments are read: they point into the decoder.
    aligned = _decoded(pcm, align_to=text)
    return tuple(
        (s.word, s.start_frame * _BLOCK, (s.end_frame + 1) * _BLOCK)  # pocketsphinx frames are 10 ms
        for s in aligned.seg()
        if not s.word.startswith(("<", "[", "+"))
    )


def _decoded(pcm: bytes, align_to: str | None = None) -> Any:
    """A pocketsphinx decoder that has decoded ``pcm`` (forced to ``align_to``'s words, if given)."""
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=RATE)
    if align_to is not None:
        decoder.set_align_text(align_to)
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    return decoder


@functools.cache
def _cards_transcript() -> dict[str, str]:
    """CMU's cards.transcription: ``<s> five five </s> (004)`` → {"004": "five five"}."""
    out = {}
    for line in (CORPUS / "cards" / "cards.transcription").read_text().splitlines():
        words, _, fileid = line.rpartition("(")
        out[fileid.strip(" )")] = words.replace("<s>", "").replace("</s>", "").strip()
    return out


@dataclass(frozen=True)
class SpokenRecording:
    """A recording as spoken, unedited: where its voice starts and ends, and where its words meet."""

    name: str
    audio: np.ndarray
    #: The room, for :func:`room_tone`: the recording before its first word and
    #: after its voice (from 200 ms past the last voiced sample, clear of the
    #: word's decay).
    room: np.ndarray
    #: The first sample of the voice, 50 ms before the level first rises.
    voice_start: int
    #: One past the last voiced sample: the end of the last run of 10 ms blocks
    #: clear of the room (vad's definition of voice, measured here on the whole
    #: recording rather than live) inside the last aligned word (+100 ms for the
    #: alignment's 10 ms frames).
    voice_end: int
    #: Between each two words: the start of the quietest 10 ms block within 50 ms
    #: of their aligned boundary, in the order spoken (a place to lengthen a
    #: pause without cutting into a word's decay).
    between_words: tuple[int, ...]


def _quietest_block_near(db: np.ndarray, sample: int) -> int:
    first = max(0, sample // _BLOCK - 5)
    return (first + int(np.argmin(db[first : sample // _BLOCK + 6]))) * _BLOCK


def spoken(name: str) -> SpokenRecording:
    audio = load(name)
    noise = leading_noise(audio)
    room_db = float(np.median(levels_db(noise)))
    room_mean_db = float(10 * np.log10(np.mean(noise * noise) + 1e-10))
    db = levels_db(audio)
    spans = word_spans(name)
    last_word_end = spans[-1][2] + RATE // 10
    # Voice as vad defines it (services/vad/voice_edge.py), from the whole recording:
    # blocks NOISE_MARGIN_DB over the room's median, in runs of MIN_RUN_BLOCKS.
    clear = db[: last_word_end // _BLOCK] > room_db + NOISE_MARGIN_DB
    runs = np.convolve(clear, np.ones(MIN_RUN_BLOCKS, dtype=int), mode="valid") == MIN_RUN_BLOCKS
    voice_end = int(np.flatnonzero(runs)[-1] + MIN_RUN_BLOCKS) * _BLOCK
    return SpokenRecording(
        name=name,
        audio=audio,
        room=np.concatenate([noise, audio[voice_end + RATE // 5 :]]),
        voice_start=max(0, int(np.argmax(db > room_mean_db + 15)) - 5) * _BLOCK,
        voice_end=voice_end,
        between_words=tuple(_quietest_block_near(db, end) for _, _, end in spans[:-1]),
    )
