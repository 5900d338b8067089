import numpy as np
import pytest

from voxmesh.audio import (
    MAX_CHUNK_BYTES,
    StreamResampler,
    check_sample_rate,
    float_to_pcm16,
    pcm16_to_float,
    resample,
)
from voxmesh.errors import InvalidArgument, InvalidAudio


def test_pcm16_round_trip() -> None:
    x = np.linspace(-1, 0.99, 1000, dtype=np.float32)
    y = pcm16_to_float(float_to_pcm16(x))
    assert np.max(np.abs(x - y)) < 1 / 32768 + 1e-7


def test_pcm16_clips_instead_of_wrapping() -> None:
    y = pcm16_to_float(float_to_pcm16(np.array([1.5, -1.5], dtype=np.float32)))
    assert y[0] > 0.99 and y[1] == -1.0


def test_odd_and_oversize_pcm_are_rejected() -> None:
    with pytest.raises(InvalidAudio, match="even number of bytes"):
        pcm16_to_float(b"\x00\x01\x02", "audio.pcm")
    with pytest.raises(InvalidAudio, match="chunk bound"):
        pcm16_to_float(b"\x00" * (MAX_CHUNK_BYTES + 2), "audio.pcm")


@pytest.mark.parametrize("rate", [-1, 1, 7_999, 48_001, 10_000_000])
def test_sample_rate_bounds(rate: int) -> None:
    with pytest.raises(InvalidArgument, match="rate_field"):
        check_sample_rate(rate, "rate_field", 16_000)


def test_sample_rate_zero_means_default() -> None:
    assert check_sample_rate(0, "f", 24_000) == 24_000


def test_stream_resampler_matches_one_shot_and_keeps_a_tone() -> None:
    rate_in, rate_out = 48_000, 16_000
    t = np.arange(rate_in) / rate_in
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    stream = StreamResampler(rate_in, rate_out)
    pieces = [stream.process(tone[i : i + 960]) for i in range(0, len(tone), 960)]
    streamed = np.concatenate([*pieces, stream.flush()])
    assert abs(len(streamed) - rate_out) <= 2
    one_shot = resample(tone, rate_in, rate_out)
    n = min(len(streamed), len(one_shot))
    assert np.max(np.abs(streamed[1000 : n - 1000] - one_shot[1000 : n - 1000])) < 1e-3
    # The dominant frequency survives resampling.
    spectrum = np.abs(np.fft.rfft(streamed[:rate_out]))
    assert abs(np.argmax(spectrum) * rate_out / len(streamed[:rate_out]) - 440) < 2


def test_stream_resampler_is_identity_at_equal_rates() -> None:
    x = np.random.default_rng(0).standard_normal(100).astype(np.float32)
    assert np.array_equal(StreamResampler(16_000, 16_000).process(x), x)
