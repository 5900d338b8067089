"""An utterance with no words through the whole CPU mesh: no reply, a clear event, the session goes on."""

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
