"""Frame decisions → speech start/end on the audio clock."""

from __future__ import annotations

from voxmesh.services.vad.segmenter import (
    Segmenter,
    SegmentEvent,
    SpeechConfirmed,
    SpeechEnded,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
)

FRAME = 480  # 30 ms at 16 kHz


def run(pattern: str, **kw: int) -> list[SegmentEvent]:
    """``pattern``: one character per frame, ``#`` voiced, ``.`` not."""
    seg = Segmenter(**{"pre_roll": 4800, "hangover": 8000, "min_speech": 1440, **kw})
    events = [seg.feed(c == "#", FRAME) for c in pattern]
    return [e for e in events if e is not None]


def test_start_and_end_are_stamped_in_samples() -> None:
    events = run("." * 20 + "#" * 30 + "." * 20)
    assert events == [
        SpeechStarted(
            utterance_start_sample=20 * FRAME - 4800, onset_sample=20 * FRAME, decided_at_sample=23 * FRAME
        ),
        # 8000 samples of hangover = 17 frames (16.7 rounded up to a frame boundary).
        SpeechEnded(last_voiced_sample=50 * FRAME, decided_at_sample=67 * FRAME),
    ]


def test_pre_roll_is_clipped_at_the_first_sample() -> None:
    (start,) = run("..####")
    assert start.onset_sample == 2 * FRAME and start.utterance_start_sample == 0


def test_clicks_shorter_than_min_speech_are_ignored() -> None:
    assert run("..##....#.##......") == []


def test_a_pause_shorter_than_the_hangover_does_not_end_the_turn() -> None:
    events = run("####" + "." * 10 + "####" + "." * 17)
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    assert events[1].last_voiced_sample == 18 * FRAME


def test_decision_is_never_earlier_than_hangover_after_the_last_voiced_sample() -> None:
    for hangover in (480, 1000, 8000, 16000):
        events = run("#####" + "." * 40, hangover=hangover)
        end = events[-1]
        assert isinstance(end, SpeechEnded)
        assert hangover <= end.decided_at_sample - end.last_voiced_sample < hangover + FRAME


def test_a_second_utterance_starts_fresh() -> None:
    events = run("####" + "." * 20 + "#####" + "." * 20)
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded, SpeechStarted, SpeechEnded]
    assert events[2].onset_sample == 24 * FRAME


def test_speech_is_confirmed_once_it_holds_enough_voiced_audio() -> None:
    # 10 voiced frames (4800 samples) are needed; the pause in between does not count.
    events = run("####" + "...." + "######" + "####" + "." * 17 + "####" + "." * 17, confirm_speech=4800)
    assert [type(e) for e in events] == [
        SpeechStarted,
        SpeechConfirmed,
        SpeechEnded,
        SpeechStarted,
        SpeechEnded,
    ]
    assert events[1] == SpeechConfirmed(voiced_samples=10 * FRAME, decided_at_sample=14 * FRAME)


def test_a_cough_or_an_mm_hm_is_never_confirmed() -> None:
    # 150 ms and 210 ms of voicing (5 and 7 frames) against 300 ms needed.
    events = run("#####" + "." * 20 + "#######" + "." * 20, confirm_speech=4800)
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded] * 2


def test_confirmation_is_off_by_default() -> None:
    assert SpeechConfirmed not in [type(e) for e in run("#" * 100 + "." * 20)]


def test_pause_then_resume_within_the_hangover_is_one_utterance() -> None:
    # pause = 4800 samples = 10 frames; the 12-frame pause ends before the 17-frame hangover.
    events = run("####" + "." * 12 + "###" + "." * 17, pause=4800)
    assert [type(e) for e in events] == [
        SpeechStarted,
        SpeechPaused,
        SpeechResumed,
        SpeechPaused,
        SpeechEnded,
    ]
    assert events[1] == SpeechPaused(last_voiced_sample=4 * FRAME, decided_at_sample=14 * FRAME)
    assert events[2] == SpeechResumed(onset_sample=16 * FRAME)
    assert events[3] == SpeechPaused(last_voiced_sample=19 * FRAME, decided_at_sample=29 * FRAME)
    assert events[4] == SpeechEnded(last_voiced_sample=19 * FRAME, decided_at_sample=36 * FRAME)


def test_pauses_shorter_than_pause_ms_and_pause_off_send_nothing() -> None:
    short = run("####" + "." * 5 + "####" + "." * 17, pause=4800)
    assert [type(e) for e in short] == [SpeechStarted, SpeechPaused, SpeechEnded]  # only the final silence
    assert [type(e) for e in run("####" + "." * 12 + "###" + "." * 17)] == [SpeechStarted, SpeechEnded]


def test_a_pause_at_or_past_the_hangover_is_just_the_end() -> None:
    events = run("####" + "." * 17, pause=8000)
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
