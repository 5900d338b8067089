"""webrtcvad's first frames: a fresh detector calls any sound speech until its noise model settles.

Measured on the real detector (no model file): noise alone must never read as
speech, and speech from a stream's first sample must still read as speech.
"""

from __future__ import annotations

import numpy as np
import pytest
import webrtcvad

from tests.piper_speech import piper_speak
from tests.recorded_speech import RATE, recordings, room_tone, spoken
from voxmesh.audio import float_to_pcm16
from voxmesh.services.vad.webrtcvad_engine import WebRtcVadEngine
from voxmesh.v1 import common_pb2


def frames(audio: np.ndarray, rate: int) -> list[bytes]:
    pcm = float_to_pcm16(audio)
    size = 2 * rate * 30 // 1000
    return [pcm[i : i + size] for i in range(0, len(pcm) - size + 1, size)]


def verdicts(audio: np.ndarray, rate: int, sensitivity: int = common_pb2.VAD_SENSITIVITY_MEDIUM) -> str:
    classifier = WebRtcVadEngine().classifier(rate, sensitivity)
    return "".join("1" if classifier.is_speech(f) else "." for f in frames(audio, rate))


def bare_verdicts(audio: np.ndarray, rate: int) -> str:
    """The detector as it comes (webrtcvad mode 2 = medium sensitivity), for comparison."""
    vad = webrtcvad.Vad(2)
    return "".join("1" if vad.is_speech(f, rate) else "." for f in frames(audio, rate))


def white_noise(seconds: float, rate: int, dbfs: float) -> np.ndarray:
    rng = np.random.default_rng(int(-dbfs) + rate)
    return (rng.standard_normal(int(seconds * rate)) * 10 ** (dbfs / 20)).astype(np.float32)


@pytest.mark.parametrize("rate", [8_000, 16_000, 48_000])
@pytest.mark.parametrize("dbfs", [-60, -50, -40])
@pytest.mark.parametrize("muted_first_s", [0.0, 0.2])
def test_noise_from_the_first_frame_is_not_speech(rate: int, dbfs: float, muted_first_s: float) -> None:
    audio = np.concatenate([np.zeros(int(muted_first_s * rate), np.float32), white_noise(1.0, rate, dbfs)])
    assert "1" not in verdicts(audio, rate), verdicts(audio, rate)


@pytest.mark.parametrize("rate", [8_000, 16_000, 48_000])
def test_the_bare_detector_calls_the_first_frames_of_noise_speech(rate: int) -> None:
    # The case the settling guards: 3-4 frames of "speech", then the noise reads as noise.
    bare = bare_verdicts(white_noise(1.0, rate, -50), rate)
    assert bare.startswith(("111", ".111")) and "1" not in bare[6:], bare


@pytest.mark.parametrize(
    "sensitivity", [common_pb2.VAD_SENSITIVITY_LOW, common_pb2.VAD_SENSITIVITY_VERY_HIGH]
)
def test_every_sensitivity_settles(sensitivity: int) -> None:
    assert "1" not in verdicts(white_noise(1.0, RATE, -60), RATE, sensitivity)


def test_a_recorded_room_is_not_speech_and_the_voice_after_it_is() -> None:
    rec = spoken(recordings()[0])
    room = room_tone(rec.room, RATE // 2)
    audio = np.concatenate([room, rec.audio[rec.voice_start : rec.voice_end]])
    ours, bare = verdicts(audio, RATE), bare_verdicts(audio, RATE)
    room_frames = room.size // (RATE * 30 // 1000)
    assert "1" in bare[:room_frames] and "1" not in ours[:room_frames], (bare, ours)
    # The voice reads as the bare detector hears it (its state differs a little: a frame or two).
    differ = sum(a != b for a, b in zip(ours[room_frames:], bare[room_frames:], strict=True))
    assert ours[room_frames:].count("1") > 100 and differ <= 2, (bare, ours)


@pytest.mark.parametrize("rate", [8_000, 16_000, 48_000])
def test_speech_from_the_first_sample_is_speech_one_frame_later(rate: int) -> None:
    voice = piper_speak("Please tell me about the weather today.", rate)
    ours, bare = verdicts(voice, rate), bare_verdicts(voice, rate)
    assert bare.startswith("1")
    assert ours.index("1") <= 2, ours
    # Past the first frames the voice reads as the bare detector hears it: the settled
    # detector's overhang after the last word can be a few frames shorter.
    voiced = bare.rindex("1") - 4
    assert ours[3:voiced] == bare[3:voiced], (bare, ours)
