import pytest

from voxmesh.gateway.turn import SpokenPhrase, Turn, TurnState


def test_latency_marks_count_from_the_endpoint_and_are_ordered() -> None:
    turn = Turn(turn_id=1, t_end=10.0, endpoint=10.5)
    turn.first_token = 10.6
    turn.first_phrase = 10.65
    turn.orpheus_first_audio = 10.7
    turn.note_audio_sent(2400, 24_000, now=10.72)
    lat = turn.latency()
    assert lat.vad_decision_ms == pytest.approx(500)
    assert lat.voxtral_first_token_ms == pytest.approx(100)
    assert lat.first_phrase_ms == pytest.approx(150)
    assert lat.orpheus_first_audio_ms == pytest.approx(200)
    assert lat.response_latency_ms == pytest.approx(220)
    assert lat.voice_to_voice_ms == pytest.approx(720)
    assert lat.gateway_overhead_ms == pytest.approx(20)


def test_speculative_marks_before_the_endpoint_are_negative_and_the_hold_is_not_overhead() -> None:
    # Reply written and synthesised in the pause (10.2-10.3), held, released at the endpoint (10.5).
    turn = Turn(turn_id=1, t_end=10.0, endpoint=10.5, speculative=True)
    turn.first_token, turn.first_phrase, turn.orpheus_first_audio = 10.2, 10.25, 10.3
    turn.note_audio_sent(2400, 24_000, now=10.503)
    lat = turn.latency()
    assert lat.voxtral_first_token_ms == pytest.approx(-300)
    assert lat.orpheus_first_audio_ms == pytest.approx(-200)
    assert lat.response_latency_ms == pytest.approx(3)
    assert lat.voice_to_voice_ms == pytest.approx(503)
    assert lat.gateway_overhead_ms == pytest.approx(3)  # from the endpoint, not from the held audio


def test_typed_turn_has_no_vad_decision() -> None:
    turn = Turn(turn_id=2, endpoint=5.0)
    turn.note_audio_sent(100, 24_000, now=5.3)
    lat = turn.latency()
    assert lat.vad_decision_ms == 0
    assert lat.voice_to_voice_ms == pytest.approx(lat.response_latency_ms) == pytest.approx(300)


def test_playout_estimate_and_spoken_text() -> None:
    turn = Turn(turn_id=3, endpoint=0.0, state=TurnState.REPLYING)
    turn.note_audio_sent(24_000, 24_000, now=1.0)  # 1 s of audio from t=1
    turn.phrases.append(SpokenPhrase("Hello there.", turn.playout_end))
    turn.note_audio_sent(48_000, 24_000, now=1.1)  # 2 s more, queued behind
    turn.phrases.append(SpokenPhrase("How are you?", turn.playout_end))
    assert turn.playout_end == pytest.approx(4.0)
    assert turn.spoken_text(at=1.5) == ""
    assert turn.spoken_text(at=2.5) == "Hello there."
    assert turn.spoken_text(at=4.0) == "Hello there. How are you?"


def test_a_gap_in_sending_restarts_playout_at_now() -> None:
    turn = Turn(turn_id=4)
    turn.note_audio_sent(24_000, 24_000, now=0.0)
    turn.note_audio_sent(24_000, 24_000, now=5.0)  # client ran dry at t=1
    assert turn.playout_end == pytest.approx(6.0)
