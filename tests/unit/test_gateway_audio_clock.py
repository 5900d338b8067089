import numpy as np
import pytest

from voxmesh.gateway.audio_clock import AudioClock


def test_since_returns_pre_roll_across_chunk_boundaries() -> None:
    clock = AudioClock(16_000)
    for i in range(5):
        clock.append(np.full(320, i, dtype=np.float32), arrived_at=float(i))
    assert clock.head == 1600
    tail = clock.since(900)
    assert len(tail) == 700
    # Sample 900 sits in chunk 2 (samples 640..959).
    assert tail[0] == 2 and tail[59] == 2 and tail[60] == 3


def test_old_audio_is_forgotten_beyond_keep() -> None:
    clock = AudioClock(1_000, keep_s=1.0)
    for i in range(30):
        clock.append(np.ones(100, dtype=np.float32), arrived_at=float(i))
    assert clock.head == 3000
    assert len(clock.since(0)) <= 1100  # only ~keep_s (plus one chunk) survives


def test_wall_time_of_a_sample_backs_off_from_its_chunk_arrival() -> None:
    clock = AudioClock(16_000)
    clock.append(np.zeros(16_000, dtype=np.float32), arrived_at=10.0)
    clock.append(np.zeros(16_000, dtype=np.float32), arrived_at=11.0)
    # The last sample of the second chunk was captured just before it arrived.
    assert clock.wall_time_of(32_000) == pytest.approx(11.0)
    # Half-way through the second chunk: half a second before its arrival.
    assert clock.wall_time_of(24_000) == pytest.approx(10.5)
    assert clock.wall_time_of(8_000) == pytest.approx(9.5)
    assert clock.wall_time_of(40_000) is None
    assert clock.offset_ms(8_000) == 500.0
