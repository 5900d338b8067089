"""Phrase boundaries on the virtual playout clock: the silence a listener hears between phrases.

A turn of three phrases (20, 8 and 12 frames: a first clause, a short
answer, a sentence), each generated after a prefill, near real time: the
load of many sessions on one card. Times in frame durations where exact,
milliseconds in the comments. (Gaps inside a phrase:
tests/unit/test_snac_decoder.py.)
"""

from __future__ import annotations

import pytest

from voxmesh.services.orpheus.playout import replay_turn
from voxmesh.services.orpheus.snac_decoder import FRAME_SECONDS
from voxmesh.services.orpheus.token_audio import StreamParams

DEFAULT = StreamParams()
PHRASES = [20, 8, 12]


def boundary_gaps(
    speed: float, decode_cost: float, prefill_s: float, prefetch: bool, one_at_a_time: bool = False
) -> list[float]:
    """Silence before each later phrase, in frame durations; decode costs ``decode_cost`` frames per frame."""
    turn = replay_turn(
        DEFAULT.new_stream,
        PHRASES,
        speed,
        lambda n: decode_cost * n * FRAME_SECONDS,
        prefill_s,
        prefetch,
        one_at_a_time,
    )
    assert [n for _, n in turn.playout.releases] and sum(n for _, n in turn.playout.releases) == sum(PHRASES)
    return [gap / FRAME_SECONDS for gap in turn.boundary_gaps_s]


def test_phrases_one_after_another_leave_the_prefill_and_the_last_decode_as_silence_at_real_time() -> None:
    # At 1.0x the listener's buffer at a phrase end is what the next phrase's
    # first chunk needs (lookahead and hold), so what is left is the
    # prefill (1.5 frames: 128 ms), plus the last window's decode (149 ms).
    prefill = 1.5 * FRAME_SECONDS
    assert boundary_gaps(1.0, 0.0, prefill, prefetch=False) == pytest.approx([1.5, 1.5])
    assert boundary_gaps(1.0, 0.05, prefill, prefetch=False) == pytest.approx([1.75, 1.75])
    # Faster than real time, a phrase of n frames banks n (1 - 1/speed)
    # frames of buffer, which the next prefill then spends. The 20-frame first
    # phrase banks more than a prefill of 150 ms; the 8-frame one does not:
    # at 1.1x the second boundary is 2 prefills - 28 (1 - 1/1.1) frames (83 ms).
    prefill = 0.15 / FRAME_SECONDS
    assert boundary_gaps(1.1, 0.0, 0.15, prefetch=False) == pytest.approx(
        [0.0, 2 * prefill - 28 * (1 - 1 / 1.1)]
    )
    assert boundary_gaps(1.2, 0.15, 0.15, prefetch=False)[1] > 0.3


@pytest.mark.parametrize("speed", [1.0, 1.05, 1.1, 1.2, 1.3])
@pytest.mark.parametrize("decode_cost", [0.0, 0.05, 0.15])
@pytest.mark.parametrize("prefill_s", [0.03, 0.15, 0.5])
def test_a_prefetched_phrase_costs_no_silence_from_real_time_up(
    speed: float, decode_cost: float, prefill_s: float
) -> None:
    # Its prompt goes in when the phrase before it has its first chunk out,
    # so it is generated while that one plays (a batching engine: vllm).
    assert boundary_gaps(speed, decode_cost, prefill_s, prefetch=True) == pytest.approx([0.0, 0.0], abs=1e-9)


@pytest.mark.parametrize("speed", [1.0, 1.1, 1.2, 1.3])
@pytest.mark.parametrize("decode_cost", [0.0, 0.05, 0.15])
def test_with_one_generation_at_a_time_prefetch_saves_only_the_last_decode(
    speed: float, decode_cost: float
) -> None:
    # The transformers engine with a static cache runs one generate at a
    # time: the next phrase still waits for the previous generation to end,
    # so the prefill stays (150 ms at 1.0x); only the last window's decode is won.
    without = boundary_gaps(speed, decode_cost, 0.15, prefetch=False, one_at_a_time=True)
    with_prefetch = boundary_gaps(speed, decode_cost, 0.15, prefetch=True, one_at_a_time=True)
    assert all(w <= o + 1e-9 for w, o in zip(with_prefetch, without, strict=True))
    if speed == 1.0:
        assert with_prefetch == pytest.approx([0.15 / FRAME_SECONDS] * 2)
