"""A spoken sentence through the whole CPU mesh, as `voxmesh talk` sends it."""

from __future__ import annotations

import asyncio

import numpy as np

from tests.integration.conftest import Mesh
from voxmesh.client import AsyncSession, AudioOut, Interrupted, SpeechStarted, TurnComplete
from voxmesh.synthetic_speech import silence, speak
from voxmesh.talk import send_paced, talk

# pocketsphinx hears about half the words of espeak speech: each sentence has
# several key words and a test asks for one of them, never for the wording.
SENTENCE = "what is the weather like today"
KEY_WORDS = {"what", "weather", "like", "today"}


def _words(text: str) -> set[str]:
    return {w.strip(".,!?:").lower() for w in text.split()}


async def test_spoken_turn_gets_transcript_reply_and_audio(mesh: Mesh) -> None:
    result = await talk(speak(SENTENCE), 16_000, mesh.address)
    assert result.session is not None
    assert result.session.voxtral.engine == "echo" and result.session.voxtral.is_fallback
    assert not result.errors, result.errors
    assert len(result.turns) == 1
    turn = result.turns[0]
    assert _words(result.final_transcript) & KEY_WORDS, result.final_transcript
    assert result.reply_text.startswith("You said")
    assert turn.reply_text == result.reply_text and turn.transcript == result.final_transcript

    reply, rate = result.reply_audio()
    assert rate == 24_000
    assert all(a.sample_rate_hz == 24_000 and len(a.pcm) % 2 == 0 for a in result.audio)
    assert [a.sequence for a in result.audio] == list(range(len(result.audio)))
    # espeak speaks ~2.5-3.5 words per second; the reply is "You said: <transcript>."
    words = len(result.reply_text.split())
    seconds = len(reply) / rate
    assert 0.15 * words < seconds < 1.0 * words + 1.0, (words, seconds)
    assert float(np.sqrt(np.mean(reply**2))) > 0.01  # not silence
    assert abs(turn.reply_audio_ms - 1000 * seconds) < 1.0

    lat = turn.latency
    assert lat.vad_decision_ms > 0
    # The speech was followed by silence: the reply was started in the pause and
    # held until the endpoint (speculation), so its stage marks may precede it.
    assert turn.speculative
    assert lat.voxtral_first_token_ms <= lat.first_phrase_ms <= lat.orpheus_first_audio_ms
    assert lat.orpheus_first_audio_ms <= lat.response_latency_ms < lat.voice_to_voice_ms
    assert abs(lat.voice_to_voice_ms - lat.response_latency_ms - lat.vad_decision_ms) < 0.01


async def test_input_at_48k_is_resampled(mesh: Mesh) -> None:
    result = await talk(speak(SENTENCE, rate_hz=48_000), 48_000, mesh.address, output_sample_rate_hz=16_000)
    assert len(result.turns) == 1, result.errors
    assert _words(result.final_transcript) & KEY_WORDS, result.final_transcript
    assert all(a.sample_rate_hz == 16_000 for a in result.audio)


async def test_typed_turn_is_answered_with_speech(mesh: Mesh) -> None:
    async with await AsyncSession.connect(mesh.address) as session:
        await session.send_text("good morning")
        await session.end_input()
        events = [e async for e in session.events()]
    done = [e for e in events if isinstance(e, TurnComplete)]
    assert len(done) == 1 and done[0].transcript == "good morning"
    assert "good morning" in done[0].reply_text.lower()
    assert sum(e.duration_ms for e in events if isinstance(e, AudioOut)) > 300
    assert done[0].latency.vad_decision_ms == 0


async def test_barge_in_interrupts_the_reply_and_the_next_turn_works(mesh: Mesh) -> None:
    """Speech while the reply is still playing cancels it; the new turn is answered."""
    events: list[object] = []
    async with await AsyncSession.connect(mesh.address) as session:

        async def read() -> None:
            async for event in session.events():
                events.append(event)

        reader = asyncio.create_task(read())
        await send_paced(session, speak("please tell me a long story about the weather"), 16_000)
        # Keep the microphone open (silence) until the reply starts playing ...
        for _ in range(300):
            if any(isinstance(e, AudioOut) for e in events):
                break
            await send_paced(session, silence(0.02), 16_000)
        assert any(isinstance(e, AudioOut) for e in events), "no reply audio before barge-in"
        # ... then talk over it.
        await send_paced(session, speak("hello hello stop"), 16_000)
        await send_paced(session, silence(1.5), 16_000)
        await session.end_input()
        await asyncio.wait_for(reader, 60)

    interrupted = [e for e in events if isinstance(e, Interrupted)]
    assert [e.turn_id for e in interrupted] == [1]
    starts = [e for e in events if isinstance(e, SpeechStarted)]
    assert [s.turn_id for s in starts] == [1, 2]
    # Nothing of turn 1 is sent after its Interrupted.
    cut = events.index(interrupted[0])
    assert not [e for e in events[cut:] if isinstance(e, AudioOut) and e.turn_id == 1]
    done = [e for e in events if isinstance(e, TurnComplete)]
    assert done and done[-1].turn_id == 2
    assert any(isinstance(e, AudioOut) and e.turn_id == 2 for e in events)


async def test_two_sessions_at_once_do_not_mix(mesh: Mesh) -> None:
    first, second = await asyncio.gather(
        talk(speak("hello, please tell me about the weather"), 16_000, mesh.address),
        talk(speak("seven eight nine ten"), 16_000, mesh.address, output_sample_rate_hz=16_000),
    )
    assert first.session and second.session and first.session.session_id != second.session.session_id
    assert len(first.turns) == 1 and len(second.turns) == 1
    # Each reply echoes only its own transcript (pocketsphinx gets few words of
    # the second sentence right, but never the first sentence's).
    assert second.final_transcript and second.final_transcript != first.final_transcript
    assert first.reply_text == f"You said: {first.final_transcript}."
    assert second.reply_text == f"You said: {second.final_transcript}."
    assert {a.sample_rate_hz for a in first.audio} == {24_000}
    assert {a.sample_rate_hz for a in second.audio} == {16_000}


async def test_interrupting_a_typed_reply_then_ending_input_closes_the_session(mesh: Mesh) -> None:
    # Found by the hostile-input property: Control.INTERRUPT with no new turn after it left the
    # gateway waiting for a turn in progress forever, so end of input never closed the stream.
    async with await AsyncSession.connect(mesh.address) as session:
        await session.send_text("tell me a long story")
        await session.interrupt()
        await session.end_input()
        async with asyncio.timeout(15):
            events = [e async for e in session.events()]
    assert not any(isinstance(e, TurnComplete) for e in events)
    # Interrupted if the reply had started by then, nothing if the interrupt came first.
    assert sum(isinstance(e, Interrupted) for e in events) <= 1
