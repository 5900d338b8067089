"""The barge-in gate's bookkeeping: what is held, dropped or sent, and in which order."""

from __future__ import annotations

from voxmesh.gateway.barge_in import BargeInGate
from voxmesh.v1 import vad_pb2

START = vad_pb2.VoiceStart(utterance_start_sample=100, onset_sample=400, decided_at_sample=1840)


def test_nothing_is_held_when_no_speech_is_pending() -> None:
    gate = BargeInGate()
    assert gate.hold(("a", None)) == [("a", None)]
    assert gate.ended() == []


def test_a_sound_that_ends_unconfirmed_releases_the_reply_in_order() -> None:
    gate = BargeInGate()
    gate.pause(START)
    assert gate.hold(("a", None)) == [] and gate.hold(("b", None)) == []
    assert gate.paused
    assert gate.ended() == [("a", None), ("b", None)]
    assert not gate.paused and gate.hold(("c", None)) == [("c", None)]


def test_confirmed_speech_drops_the_held_reply_and_names_its_start() -> None:
    gate = BargeInGate()
    gate.pause(START)
    gate.hold(("a", None))
    assert gate.confirmed() == START
    assert gate.ended() == [] and gate.confirmed() is None


def test_a_full_hold_sends_everything_but_a_later_confirmation_still_interrupts() -> None:
    gate = BargeInGate(max_held=2)
    gate.pause(START)
    assert gate.hold(("a", None)) == [] and gate.hold(("b", None)) == []
    assert gate.hold(("c", None)) == [("a", None), ("b", None), ("c", None)]
    assert gate.hold(("d", None)) == [("d", None)]
    assert gate.confirmed() == START


def test_zero_minimum_turns_the_gate_off() -> None:
    assert not BargeInGate(min_speech_ms=0).enabled
