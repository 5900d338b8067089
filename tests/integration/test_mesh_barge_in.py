"""Not every sound is a barge-in: a cough or an "mm-hm" during the reply pauses it, then it resumes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import pytest

from tests.integration.conftest import Mesh
from tests.piper_speech import piper_speak
from voxmesh.client import AsyncSession, AudioOut, Interrupted, SpeechStarted, TurnComplete
from voxmesh.synthetic_speech import silence, speak
from voxmesh.talk import send_paced

RATE = 16_000


def cough() -> np.ndarray:
    """150 ms of loud noise with a fast attack and decay, as a cough sounds to a VAD."""
    n = int(0.15 * RATE)
    noise = np.random.default_rng(7).normal(0.0, 0.3, n)
    return (noise * np.hanning(n) ** 0.5).astype(np.float32)


def mm_hm() -> np.ndarray:
    """The first 200 ms of Piper saying "mm-hm"."""
    audio = piper_speak("Mm-hm.")
    start = int(np.flatnonzero(np.abs(audio) > 0.02)[0])
    return audio[start : start + int(0.2 * RATE)]


async def _reply_with_sounds(mesh: Mesh, sounds: list[np.ndarray]) -> list[object]:
    """Ask a question; once the reply's audio flows, make ``sounds`` (0.6 s apart), then listen."""
    events: list[object] = []
    async with await AsyncSession.connect(mesh.address) as session:

        async def read() -> None:
            async for event in session.events():
                events.append(event)

        reader = asyncio.create_task(read())
        await send_paced(session, speak("please tell me a long story about the weather"), RATE)
        for _ in range(300):
            if any(isinstance(e, AudioOut) for e in events):
                break
            await send_paced(session, silence(0.02), RATE)
        assert any(isinstance(e, AudioOut) for e in events), "no reply audio"
        for sound in sounds:
            await send_paced(session, np.concatenate([sound, silence(0.6)]), RATE)
        await send_paced(session, silence(1.5), RATE)
        await session.end_input()
        await asyncio.wait_for(reader, 60)
    return events


@pytest.mark.parametrize("sound", ["cough", "mm-hm"])
async def test_the_sound_alone_is_speech_to_the_vad(mesh: Mesh, sound: str) -> None:
    """So the tests below are not vacuous: vad does call each sound speech."""
    from tests.integration.test_vad_service import detect
    from voxmesh.audio import float_to_pcm16

    audio = cough() if sound == "cough" else mm_hm()
    events = await detect(
        mesh.vad.address, float_to_pcm16(np.concatenate([silence(0.5), audio, silence(1.0)]))
    )
    assert [e.WhichOneof("event") for e in events] == ["engine", "speech_started", "speech_ended"]


async def test_a_cough_and_an_mm_hm_during_the_reply_do_not_interrupt_it(mesh: Mesh) -> None:
    events = await _reply_with_sounds(mesh, [cough(), mm_hm()])
    assert not [e for e in events if isinstance(e, Interrupted)]
    assert [e.turn_id for e in events if isinstance(e, SpeechStarted)] == [1]
    (done,) = [e for e in events if isinstance(e, TurnComplete)]
    audio = [e for e in events if isinstance(e, AudioOut)]
    # The whole reply arrived, in order, before its TurnComplete.
    assert [a.sequence for a in audio] == list(range(len(audio)))
    assert abs(sum(a.duration_ms for a in audio) - done.reply_audio_ms) < 1.0
    assert events.index(audio[-1]) < events.index(done)


async def test_with_no_minimum_the_same_sounds_cut_the_reply_off(start_mesh: Callable[..., Mesh]) -> None:
    mesh = start_mesh(gateway_args=("--barge-in-min-speech-ms", "0"))
    events = await _reply_with_sounds(mesh, [cough(), mm_hm()])
    # The cough cuts the reply off (and the mm-hm then cuts off the cough's own reply).
    assert [e.turn_id for e in events if isinstance(e, Interrupted)][:1] == [1]
