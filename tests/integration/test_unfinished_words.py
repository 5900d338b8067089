"""Endpoints held on unfinished words, on the CPU mesh (webrtcvad, echo, espeak) with Piper speech.

vad's fixed 500 ms hangover ends "I would like to book a… [700 ms] table for
two people tonight" in the pause; the gateway sees the words end on "a" and
holds that endpoint (``--hold-unfinished-ms``, 1000 ms by default), so the
speech after the pause continues the same turn. Asserted on what the client
gets, in order, and on the gateway's log; never on timings.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tests.integration.conftest import Mesh
from tests.integration.test_mesh_speculation import kinds, talk_events
from tests.piper_speech import piper_speak
from voxmesh.client import AudioOut, ReplyText, SpeechEnded, SpeechStarted, Transcript
from voxmesh.synthetic_speech import silence

RATE = 16_000
#: Past vad's 500 ms hangover (so silence alone splits the turn), inside the 1000 ms hold.
PAUSE_S = 0.7


def trimmed(text: str) -> np.ndarray:
    audio = piper_speak(text)
    loud = np.flatnonzero(np.abs(audio) > 0.02)
    return audio[int(loud[0]) : int(loud[-1]) + 1]


def paused_request() -> np.ndarray:
    return np.concatenate(
        [trimmed("I would like to book a"), silence(PAUSE_S, RATE), trimmed("table for two people tonight.")]
    )


async def test_a_pause_after_an_unfinished_word_is_one_turn(mesh: Mesh) -> None:
    result, events = await talk_events(mesh, paused_request())
    assert not result.errors, result.errors
    log = mesh.gateway.log_tail(400)
    assert "endpoint held: the words so far end unfinished" in log
    assert "held endpoint: the user went on, one turn" in log
    (turn,) = result.turns
    assert kinds(events).count(SpeechStarted) == 1 and kinds(events).count(SpeechEnded) == 1
    finals = [e for e in events if isinstance(e, Transcript) and e.is_final]
    assert [f.text for f in finals] == [turn.transcript]
    # The words on both sides of the pause are in the one turn's transcript.
    words = turn.transcript.split()
    assert "book" in words and "people" in words, turn.transcript
    # Only the whole utterance's reply reached the client (the tentative one made in the pause was dropped).
    assert turn.reply_text == f"You said: {turn.transcript}."
    assert "".join(e.delta for e in events if isinstance(e, ReplyText)) == turn.reply_text
    ended = kinds(events).index(SpeechEnded)
    assert not any(isinstance(e, (ReplyText, AudioOut)) for e in events[:ended])


async def test_without_the_hold_the_same_pause_splits_the_turn(start_mesh: Callable[..., Mesh]) -> None:
    # The control for the test above: the pause is long enough for vad alone to end the turn there.
    mesh = start_mesh(gateway_args=("--hold-unfinished-ms", "0"))
    result, events = await talk_events(mesh, paused_request())
    assert not result.errors, result.errors
    assert len(result.turns) == 2 and kinds(events).count(SpeechEnded) == 2
    assert result.turns[0].transcript.endswith("like to book a"), result.turns[0].transcript
    assert "people" in result.turns[1].transcript.split(), result.turns[1].transcript
    assert "endpoint held" not in mesh.gateway.log_tail(400)


async def test_a_turn_that_ends_unfinished_is_answered_once_the_hold_runs_out(mesh: Mesh) -> None:
    result, events = await talk_events(mesh, trimmed("Please tell me about the"))
    assert not result.errors, result.errors
    (turn,) = result.turns
    assert turn.transcript.endswith(" the")
    assert turn.reply_text == f"You said: {turn.transcript}."
    (ended,) = [e for e in events if isinstance(e, SpeechEnded)]
    # The endpoint came past vad's 500 ms hangover: at the end of the hold, in silence.
    assert ended.endpoint_offset_ms - ended.last_voiced_offset_ms > 600
    assert "endpoint held: the words so far end unfinished" in mesh.gateway.log_tail(400)
