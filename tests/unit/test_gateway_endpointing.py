"""The listening phase's transitions (gateway.endpointing): tentative reply, held endpoint, endpoint.

Driven as the session drives them, with the real speculation and hold policies
and their Prometheus counters; positions are samples of the 16 kHz audio clock.
"""

from __future__ import annotations

import pytest

from voxmesh.gateway.endpointing import Listening, ListeningPhase
from voxmesh.gateway.speculation import Speculation
from voxmesh.gateway.unfinished_words import EndpointHold
from voxmesh.metrics import HELD_ENDPOINTS, SPECULATIVE_TURNS

MS = 16  # samples per ms
HOLD_MS = 1000


def _listening(speculate_ms: int = 200, hold_ms: int = HOLD_MS) -> Listening:
    return Listening(7, Speculation(speculate_ms), EndpointHold(hold_ms))


def _count(counter: object, outcome: str) -> float:
    return counter.labels(outcome)._value.get()  # type: ignore[attr-defined]


def test_finished_words_end_at_vads_endpoint() -> None:
    listening = _listening()
    endpoint = listening.at_vad_endpoint(1000 * MS, 1200 * MS, "What time is it?", "en", 1.0)
    assert endpoint is not None and (endpoint.last_voiced, endpoint.decided_at) == (1000 * MS, 1200 * MS)
    assert not endpoint.speculative
    assert listening.phase is ListeningPhase.ENDED
    # Ended: later events change nothing.
    assert listening.at_vad_endpoint(2000 * MS, 2200 * MS, "book a", "en", 2.0) is None
    assert not listening.paused()


def test_unfinished_words_hold_until_the_pause_reaches_the_hold_then_release_at_the_last_voiced_sample() -> (
    None
):
    listening = _listening()
    released = _count(HELD_ENDPOINTS, "released")
    assert listening.at_vad_endpoint(1000 * MS, 1200 * MS, "I'd like to book a", "en", 10.0) is None
    assert listening.phase is ListeningPhase.HELD
    # Not yet: neither the audio clock nor the wall clock reached the hold's end.
    assert listening.due((1000 + HOLD_MS - 10) * MS, 10.0 + HOLD_MS / 1000 - 0.01) is None
    endpoint = listening.due((1000 + HOLD_MS) * MS, 10.5)
    assert endpoint is not None and endpoint.last_voiced == 1000 * MS
    assert endpoint.decided_at == (1000 + HOLD_MS) * MS
    assert listening.phase is ListeningPhase.ENDED
    assert _count(HELD_ENDPOINTS, "released") == released + 1


def test_a_client_that_stopped_sending_audio_is_released_on_the_wall_clock() -> None:
    listening = _listening()
    assert listening.at_vad_endpoint(1000 * MS, 1200 * MS, "and the", "en", 10.0) is None
    # The audio clock stands still (no audio arrives); the wall clock passed the hold.
    assert listening.due(1200 * MS, 10.0 + HOLD_MS / 1000) is not None


def test_speech_inside_a_hold_continues_the_same_turn() -> None:
    listening = _listening(speculate_ms=0)
    continued = _count(HELD_ENDPOINTS, "continued")
    assert listening.at_vad_endpoint(1000 * MS, 1500 * MS, "book me a", "en", 1.0) is None
    assert listening.spoke_in_hold() is None  # no tentative reply was in flight
    assert listening.phase is ListeningPhase.PLAIN
    assert _count(HELD_ENDPOINTS, "continued") == continued + 1
    # The next endpoint is judged afresh.
    assert listening.at_vad_endpoint(3000 * MS, 3500 * MS, "book me a table", "en", 3.0) is not None


def test_no_hold_when_vad_already_waited_past_it_or_the_language_is_not_english_or_the_hold_is_off() -> None:
    assert _listening().at_vad_endpoint(1000 * MS, (1000 + HOLD_MS) * MS, "to", "en", 1.0) is not None
    assert _listening().at_vad_endpoint(1000 * MS, 1200 * MS, "und dann der", "de", 1.0) is not None
    assert _listening(hold_ms=0).at_vad_endpoint(1000 * MS, 1200 * MS, "book a", "en", 1.0) is not None


def test_a_pause_starts_a_tentative_reply_that_speech_drops_and_the_endpoint_confirms() -> None:
    listening = _listening()
    discarded = _count(SPECULATIVE_TURNS, "discarded")
    assert listening.paused()
    assert listening.phase is ListeningPhase.TENTATIVE and not listening.utterance_at_voxtral
    assert not listening.paused()  # one tentative reply per pause
    dropped = listening.resumed()
    assert dropped is not None and listening.phase is ListeningPhase.PLAIN and listening.utterance_at_voxtral
    assert _count(SPECULATIVE_TURNS, "discarded") == discarded + 1
    assert listening.paused()
    assert listening.tentative is not None
    listening.tentative.hold("orpheus", object())
    endpoint = listening.at_vad_endpoint(1000 * MS, 1200 * MS, "What time is it?", "en", 1.0)
    assert endpoint is not None and endpoint.speculative and len(endpoint.replay) == 1


def test_a_held_endpoint_keeps_its_tentative_reply_until_it_is_released_or_dropped() -> None:
    listening = _listening()
    assert listening.paused()
    # The tentative reply's own transcript is the words so far.
    assert listening.tentative is not None
    listening.tentative.transcript = "remind me to"
    words = listening.words_so_far("remind")
    assert words == "remind me to"
    assert listening.at_vad_endpoint(1000 * MS, 1200 * MS, words, "en", 1.0) is None
    assert listening.phase is ListeningPhase.HELD_TENTATIVE
    endpoint = listening.due((1000 + HOLD_MS) * MS, 1.0)
    assert endpoint is not None and endpoint.speculative

    other = _listening()
    assert other.paused()
    assert other.at_vad_endpoint(1000 * MS, 1200 * MS, "book a", "en", 1.0) is None
    assert other.spoke_in_hold() is not None  # the reply written for half a sentence goes
    assert other.phase is ListeningPhase.PLAIN


def test_the_end_of_input_inside_a_hold_ends_at_vads_last_voiced_sample() -> None:
    listening = _listening()
    assert listening.at_vad_endpoint(1000 * MS, 1200 * MS, "with", "en", 1.0) is None
    endpoint = listening.end_of_input(1300 * MS)
    assert (endpoint.last_voiced, endpoint.decided_at) == (1000 * MS, 1300 * MS)
    plain = _listening().end_of_input(900 * MS)
    assert (plain.last_voiced, plain.decided_at) == (900 * MS, 900 * MS)


def test_a_barge_in_abandons_the_phase_and_its_tentative_reply() -> None:
    listening = _listening()
    assert listening.paused()
    assert listening.abandon() is not None
    assert listening.phase is ListeningPhase.ENDED and listening.tentative is None


def test_the_words_confidence_and_the_models_verdict_decide_together() -> None:
    """A tentative reply's final transcript brings its last word's confidence; vad's endpoint its P."""
    from voxmesh.v1 import voxtral_pb2

    def heard(text: str, confidence: float | None) -> voxtral_pb2.RespondResponse:
        return voxtral_pb2.RespondResponse(
            transcript=voxtral_pb2.TranscriptUpdate(
                turn_id=1, text=text, is_final=True, last_word_confidence=confidence
            )
        )

    misheard = _listening()
    assert misheard.paused() and misheard.tentative is not None
    misheard.tentative.hold("voxtral", heard("call my sister what for", 0.04))
    assert misheard.confidence_so_far(None) == pytest.approx(0.04)
    words = misheard.words_so_far("")
    # Smart Turn sure the turn sounds finished, the last word doubtful: the endpoint stands.
    endpoint = misheard.at_vad_endpoint(1000 * MS, 1200 * MS, words, "en", 1.0, 0.04, 0.97)
    assert endpoint is not None and endpoint.speculative
    # The same doubtful word with speech that does not sound finished is held.
    doubtful = _listening()
    assert doubtful.at_vad_endpoint(1000 * MS, 1200 * MS, "what for", "en", 1.0, 0.04, 0.3) is None
    # A transcriber that gives no confidence: the words decide, as before.
    unknown = _listening()
    assert unknown.paused() and unknown.tentative is not None
    unknown.tentative.hold("voxtral", heard("book me a", None))
    assert unknown.confidence_so_far(0.9) is None
    assert unknown.at_vad_endpoint(1000 * MS, 1200 * MS, "book me a", "en", 1.0, None, 0.97) is None
