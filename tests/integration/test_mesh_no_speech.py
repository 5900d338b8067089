"""Voxtral turn outcomes through the whole CPU mesh, as a client sees them.

An utterance with no words (no reply, a clear event, the session goes on),
and an audio-mode turn's final transcript.
"""

from __future__ import annotations

import numpy as np

from tests.integration.conftest import Mesh
from voxmesh.synthetic_speech import silence, speak
from voxmesh.talk import talk


def tone(seconds: float, hz: float = 440.0, rate_hz: int = 16_000) -> np.ndarray:
    """A steady tone: webrtcvad takes it for speech, pocketsphinx hears no word in it."""
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


async def test_a_turn_with_no_words_is_a_no_speech_error_and_the_next_turn_is_answered(mesh: Mesh) -> None:
    audio = np.concatenate(
        [silence(0.3), tone(1.0), silence(1.5), speak("what is the weather like today"), silence(1.5)]
    )
    result = await talk(audio, 16_000, mesh.address)
    # Turn 1 (the tone): an empty final transcript, then NO_SPEECH from voxtral, and no reply.
    assert [(e.stage, e.code, e.turn_id, e.retryable) for e in result.errors] == [
        ("voxtral", "NO_SPEECH", 1, True)
    ]
    assert [t.text for t in result.transcripts if t.is_final and t.turn_id == 1] == [""]
    # Turn 2 (speech) is answered: the session went on.
    assert [t.turn_id for t in result.turns] == [2]
    assert result.turns[0].reply_text.startswith("You said")


async def test_an_audio_mode_turn_gives_the_client_a_final_transcript(mesh: Mesh) -> None:
    # Audio mode answers from the audio; its transcript, made beside the reply, still reaches the
    # client (and the turn's summary), as in stream mode.
    result = await talk(speak("what is the weather like today"), 16_000, mesh.address, turn_mode="audio")
    assert not result.errors, result.errors
    (turn,) = result.turns
    finals = [t.text for t in result.transcripts if t.is_final and t.turn_id == turn.turn_id]
    assert len(finals) == 1 and finals[0]
    assert turn.transcript == finals[0]
    assert turn.reply_text.startswith("You said")
