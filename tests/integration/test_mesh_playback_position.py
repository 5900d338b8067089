"""Barge-in keeps exactly what was heard: the client reports its playback position, the cut is at that word."""

from __future__ import annotations

import asyncio

from tests.integration.conftest import Mesh
from voxmesh.client import AsyncSession, AudioOut, Interrupted, TurnComplete

TYPED = "one two three four five six seven eight nine ten eleven twelve"
#: The echo's reply; orpheus speaks it as one phrase (no cut before its full stop).
REPLY = f"You said: {TYPED}."


def _middle_of_word(words: list[str], index: int) -> float:
    """Share of the phrase's audio at the middle of ``words[index]`` (letters + 1 per word)."""
    sizes = [len(w) + 1 for w in words]
    return (sum(sizes[:index]) + sizes[index] / 2) / sum(sizes)


async def test_interrupted_spoken_text_ends_at_the_word_playing_at_the_reported_position(mesh: Mesh) -> None:
    async with await AsyncSession.connect(mesh.address) as session:
        await session.send_text(TYPED)
        events = []
        async for event in session.events():
            events.append(event)
            if isinstance(event, TurnComplete):
                break
        audio = [e for e in events if isinstance(e, AudioOut)]
        assert "".join(e.delta for e in events if hasattr(e, "delta")) == REPLY
        total_ms = sum(a.duration_ms for a in audio)
        # The reply is still playing on the client (it came faster than real time):
        # the player is in the middle of "seven", and the user talks over it.
        words = REPLY.split()
        played_ms = _middle_of_word(words, words.index("seven")) * total_ms
        await session.report_playback(1, played_ms)
        await session.interrupt()
        await session.end_input()
        async with asyncio.timeout(30):
            rest = [e async for e in session.events()]
    (interrupted,) = [e for e in rest if isinstance(e, Interrupted)]
    assert interrupted.turn_id == 1
    assert abs(interrupted.played_ms - played_ms) < 0.01
    assert interrupted.spoken_text == "You said: one two three four five six seven"
