"""G.711 and PCM in the Realtime edge: reference code points, round trips, refusals naming the field."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from voxmesh.realtime.audio_formats import (
    PCMA,
    PCMU,
    AudioFormat,
    alaw_decode,
    alaw_encode,
    ulaw_decode,
    ulaw_encode,
)
from voxmesh.realtime.protocol_error import ProtocolError

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)


def test_g711_reference_code_points() -> None:
    # ITU-T G.711: silence is 0xFF in µ-law and 0xD5 in A-law; full scale saturates.
    assert ulaw_encode(np.array([0, 32767, -32768], np.int16)).tolist() == [0xFF, 0x80, 0x00]
    assert alaw_encode(np.array([0, 32767, -32768], np.int16)).tolist() == [0xD5, 0xAA, 0x2A]
    assert ulaw_decode(np.array([0xFF, 0x80, 0x00], np.uint8)).tolist() == [0, 32124, -32124]
    assert alaw_decode(np.array([0xD5, 0xAA, 0x2A], np.uint8)).tolist() == [8, 32256, -32256]


@pytest.mark.parametrize(("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)])
def test_g711_round_trip_error_is_within_one_step_of_its_segment(encode, decode) -> None:  # type: ignore[no-untyped-def]
    back = decode(encode(ALL_SAMPLES)).astype(np.int32)
    error = np.abs(back - ALL_SAMPLES.astype(np.int32))
    # Logarithmic steps: at most 1/16 of the magnitude (+ the smallest step) off.
    assert np.all(error <= np.abs(ALL_SAMPLES.astype(np.int32)) // 16 + 16)
    # Every code decodes and re-encodes to itself.
    codes = np.arange(256, dtype=np.uint8)
    again = encode(decode(codes))
    assert np.array_equal(decode(again), decode(codes))


def test_pcmu_append_becomes_pcm16_at_8k() -> None:
    fmt = AudioFormat.parse({"type": PCMU}, "session.audio.input.format")
    assert fmt.rate_hz == 8000
    pcm = fmt.decode(base64.b64encode(bytes([0xFF] * 80)).decode())
    assert pcm == bytes(160)
    assert AudioFormat(PCMA, 8000).encode(bytes(4)) == base64.b64encode(bytes([0xD5, 0xD5])).decode()


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ("audio/pcm", "f"),
        ({"type": "audio/opus"}, "f.type"),
        ({"type": "audio/pcm", "rate": 96000}, "f.rate"),
        ({"type": "audio/pcm", "rate": True}, "f.rate"),
        ({"type": "audio/pcmu", "rate": 16000}, "f.rate"),
        ({"type": "audio/pcm", "bits": 16}, "f.bits"),
    ],
)
def test_bad_formats_name_the_field(value: object, param: str) -> None:
    with pytest.raises(ProtocolError) as err:
        AudioFormat.parse(value, "f")
    assert err.value.param == param


@pytest.mark.parametrize(("audio", "words"), [("@@@", "base64"), ("AAAA", "odd"), (17, "base64")])
def test_bad_audio_names_the_field(audio: object, words: str) -> None:
    with pytest.raises(ProtocolError) as err:
        AudioFormat().decode(audio, "audio")
    assert err.value.param == "audio" and words in err.value.message
