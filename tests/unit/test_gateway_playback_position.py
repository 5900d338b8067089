"""What the user heard of an interrupted reply: phrase spans, the word playing, reports and the estimate."""

from __future__ import annotations

import pytest

from voxmesh.errors import InvalidArgument
from voxmesh.gateway.playback_position import ReplyPlayback, estimated_played_ms

RATE = 24_000


def two_phrases() -> ReplyPlayback:
    playback = ReplyPlayback()
    # "Sure thing." over 0.5 s, then "It is sunny in Paris today." over 2 s.
    playback.phrase_done("Sure thing.", RATE // 2)
    playback.phrase_done("It is sunny in Paris today.", RATE // 2 + 2 * RATE)
    return playback


def test_whole_phrases_before_the_position_are_kept() -> None:
    playback = two_phrases()
    assert playback.heard_text(500, RATE) == "Sure thing."
    assert playback.heard_text(2500, RATE) == "Sure thing. It is sunny in Paris today."
    assert playback.heard_text(0, RATE) == ""


def test_the_cut_inside_a_phrase_keeps_the_word_that_was_playing() -> None:
    playback = two_phrases()
    # "It is sunny in Paris today." gives each word its letters + 1 of 28 shares:
    # It [0, 3) is [3, 6) sunny [6, 12) in [12, 15) Paris [15, 21) today. [21, 28).
    # 1.5 s in = 1.0 s into the 2 s phrase = share 14/28: "in" was playing.
    assert playback.heard_text(1500, RATE) == "Sure thing. It is sunny in"
    # Just inside "Paris" (share 15.5/28).
    assert playback.heard_text(500 + 2000 * 15.5 / 28, RATE) == "Sure thing. It is sunny in Paris"
    # The phrase's very first moment: its first word has begun.
    assert playback.heard_text(501, RATE) == "Sure thing. It"


def test_a_report_wins_over_the_estimate_and_never_goes_back() -> None:
    playback = two_phrases()
    assert playback.played_ms(700.0) == 700.0
    playback.report(1200.0)
    playback.report(900.0)  # crossed on the wire
    assert playback.played_ms(2400.0) == 1200.0


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_a_bad_report_is_refused_naming_the_field(bad: float) -> None:
    with pytest.raises(InvalidArgument) as caught:
        ReplyPlayback().report(bad)
    assert caught.value.field == "playback.played_ms"


def test_the_estimate_is_what_was_sent_less_what_is_still_to_play() -> None:
    # 3 s sent; playback will end 1.25 s from now: 1.75 s played.
    assert estimated_played_ms(3 * RATE, playout_end=11.25, now=10.0, sample_rate_hz=RATE) == 1750.0
    assert estimated_played_ms(3 * RATE, playout_end=9.0, now=10.0, sample_rate_hz=RATE) == 3000.0
    assert estimated_played_ms(0, playout_end=0.0, now=10.0, sample_rate_hz=RATE) == 0.0
