"""Speculative replies on the CPU mesh (webrtcvad, echo, espeak), as real processes.

The gateway starts a tentative reply after ``--speculate-after-ms`` of silence
in an utterance and releases it at the endpoint, or drops it unseen when the
user speaks on. Asserted on the order and content of what the client gets,
never on timings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np

from tests.integration.conftest import Mesh
from tests.integration.test_scaling import echo_prompt_tokens
from voxmesh.client import (
    AsyncSession,
    AudioOut,
    Event,
    ReplyText,
    SpeechEnded,
    SpeechStarted,
    TurnComplete,
)
from voxmesh.client import Transcript as TranscriptEvent
from voxmesh.synthetic_speech import silence, speak
from voxmesh.talk import TalkResult, send_paced, talk

RATE = 16_000


def kinds(events: list[Event]) -> list[type]:
    return [type(e) for e in events]


async def talk_events(mesh: Mesh, audio: np.ndarray) -> tuple[TalkResult, list[Event]]:
    """One spoken turn (then 1.5 s of silence); the result and every event, in order."""
    events: list[Event] = []
    result = await talk(audio, RATE, mesh.address, on_event=events.append)
    return result, events


async def test_a_complete_question_is_answered_from_the_reply_made_in_the_pause(mesh: Mesh) -> None:
    result, events = await talk_events(mesh, speak("what is the weather like today", RATE))
    assert not result.errors, result.errors
    (turn,) = result.turns
    assert turn.speculative  # started in the pause, confirmed by the endpoint
    ended = kinds(events).index(SpeechEnded)
    # Nothing of the reply reached the client before the endpoint; all of it after.
    assert not any(isinstance(e, (ReplyText, AudioOut, TurnComplete)) for e in events[:ended])
    assert any(isinstance(e, AudioOut) for e in events[ended:])
    assert turn.reply_text == "".join(e.delta for e in events if isinstance(e, ReplyText))
    assert turn.reply_text.startswith("You said")


async def test_a_pause_mid_sentence_is_one_turn_and_the_dropped_reply_is_never_seen(mesh: Mesh) -> None:
    # 450 ms of silence: past the 200 ms that starts a tentative reply, short of the 500 ms hangover.
    audio = np.concatenate(
        [speak("what time is it", RATE), silence(0.45, RATE), speak("in paris today", RATE)]
    )
    result, events = await talk_events(mesh, audio)
    assert not result.errors, result.errors
    # One turn: one start, one end, one final transcript, one reply.
    assert kinds(events).count(SpeechStarted) == 1 and kinds(events).count(SpeechEnded) == 1
    finals = [e for e in events if isinstance(e, TranscriptEvent) and e.is_final]
    (turn,) = result.turns
    assert len(finals) == 1 and finals[0].text == turn.transcript
    assert {e.turn_id for e in events if isinstance(e, (AudioOut, ReplyText))} == {turn.turn_id}
    # The reply the client heard is the one to the whole utterance, and only it: every
    # text delta belongs to it and the audio sent is exactly its audio.
    assert "".join(e.delta for e in events if isinstance(e, ReplyText)) == turn.reply_text
    assert turn.reply_text == f"You said: {turn.transcript}."
    sent_ms = sum(len(e.pcm) // 2 for e in events if isinstance(e, AudioOut)) / 24.0
    assert abs(sent_ms - turn.reply_audio_ms) < 1.0
    # A tentative reply was made in the pause and dropped when the user went on.
    assert "tentative reply discarded" in mesh.gateway.log_tail(400)


async def test_a_dropped_reply_leaves_nothing_in_the_history(start_mesh: Callable[..., Mesh]) -> None:
    mesh = start_mesh()
    audio = np.concatenate(
        [speak("what time is it", RATE), silence(0.45, RATE), speak("in paris today", RATE)]
    )
    async with await AsyncSession.connect(mesh.address, sample_rate_hz=RATE) as session:
        spoken = await session_turn(session, audio)
        # Let the reply play out: typing while it plays is a barge-in (history keeps what was heard).
        await asyncio.sleep(spoken.reply_audio_ms / 1000 + 0.5)
        typed = await typed_turn(session, "and tomorrow")
    assert "tentative reply discarded" in mesh.gateway.log_tail(400)
    # The prompt of the typed turn holds one earlier exchange: the whole utterance and its
    # reply. A leaked tentative exchange would add its words.
    assert typed.prompt_tokens == echo_prompt_tokens([spoken.transcript, "and tomorrow"]), (spoken, typed)


async def session_turn(session: AsyncSession, audio: np.ndarray) -> TurnComplete:
    await send_paced(session, np.concatenate([audio, silence(1.5, RATE)]), RATE, True)
    return await next_complete(session)


async def typed_turn(session: AsyncSession, text: str) -> TurnComplete:
    await session.send_text(text)
    return await next_complete(session)


async def next_complete(session: AsyncSession) -> TurnComplete:
    async for event in session.events():
        if isinstance(event, TurnComplete):
            return event
    raise AssertionError("the stream ended without a TurnComplete")
