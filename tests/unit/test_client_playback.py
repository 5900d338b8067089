"""The SDK's model of a real-time player, behind `voxmesh talk`'s PlaybackPosition reports."""

from __future__ import annotations

import pytest

from voxmesh.client.playback import PlaybackClock


def test_playback_runs_at_real_time_from_the_first_chunk_and_waits_when_starved() -> None:
    player = PlaybackClock()
    assert player.position_ms(0.0) == (0, 0.0)
    player.on_audio(1, 0.5, now=10.0)
    player.on_audio(1, 0.5, now=10.1)
    assert player.position_ms(10.4) == (1, pytest.approx(400.0))
    assert player.position_ms(12.0) == (1, 1000.0)  # all of it, then it waits
    player.on_audio(1, 0.5, now=13.0)  # a late phrase resumes from where playback stopped
    assert player.position_ms(13.25) == (1, pytest.approx(1250.0))


def test_a_new_turn_starts_from_zero() -> None:
    player = PlaybackClock()
    player.on_audio(1, 2.0, now=0.0)
    player.on_audio(2, 1.0, now=1.0)
    assert player.position_ms(1.5) == (2, pytest.approx(500.0))
