"""A stage that is down refuses new sessions naming it (UNAVAILABLE); one that goes down
mid-session gives an Error naming it, and the session recovers when it is back.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.conftest import Mesh
from tests.integration.stage_verdicts import wait_for_verdict
from voxmesh.client import AsyncSession, AudioOut, Event, StageError, TurnComplete, Unavailable
from voxmesh.processes import check_health


async def _turn(session: AsyncSession, events: list[Event], text: str, timeout_s: float = 30) -> list[Event]:
    start = len(events)
    await session.send_text(text)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        new = events[start:]
        if any(isinstance(e, (TurnComplete, StageError)) for e in new):
            return new
        await asyncio.sleep(0.05)
    raise AssertionError(f"turn did not end: {events[start:]}")


async def test_orpheus_down_refuses_new_sessions_then_back_serves(start_mesh) -> None:  # type: ignore[no-untyped-def]
    """A stage down when a session starts: UNAVAILABLE naming it, before SessionStarted.

    (Before, the session was admitted with an empty orpheus engine in its SessionStarted
    and every turn failed; a session that loses a stage later still survives it: below.)
    """
    mesh: Mesh = start_mesh(skip=("orpheus",))
    (line,) = wait_for_verdict(mesh.gateway, ["orpheus"])
    assert "connection refused" in str(line["cause"]), line
    assert check_health(mesh.address) == "NOT_SERVING"
    with pytest.raises(Unavailable) as refused:
        await AsyncSession.connect(mesh.address)
    assert refused.value.retryable
    assert refused.value.message.startswith("orpheus at "), refused.value.message

    mesh.orpheus.start().wait_serving()
    mesh.gateway.wait_serving(60)  # noticed by itself: the check looks again every second
    events: list[Event] = []
    async with await AsyncSession.connect(mesh.address) as session:

        async def read() -> None:
            async for event in session.events():
                events.append(event)

        reader = asyncio.create_task(read())
        turn = await _turn(session, events, "hello again")
        assert any(isinstance(e, TurnComplete) for e in turn), turn
        assert any(isinstance(e, AudioOut) for e in turn)
        await session.end_input()
        await asyncio.wait_for(reader, 30)
    mesh.orpheus.stop()


async def test_voxtral_killed_mid_session_then_restarted(mesh: Mesh) -> None:
    events: list[Event] = []
    async with await AsyncSession.connect(mesh.address) as session:

        async def read() -> None:
            async for event in session.events():
                events.append(event)

        reader = asyncio.create_task(read())
        ok = await _turn(session, events, "first question")
        assert any(isinstance(e, TurnComplete) for e in ok)

        mesh.voxtral.kill()
        failed = await _turn(session, events, "second question")
        errors = [e for e in failed if isinstance(e, StageError)]
        assert errors and errors[0].stage == "voxtral", failed

        mesh.voxtral.start().wait_serving()
        recovered: list[Event] = []
        for _ in range(20):
            recovered = await _turn(session, events, "third question")
            if any(isinstance(e, TurnComplete) for e in recovered):
                break
            await asyncio.sleep(0.5)
        assert any(isinstance(e, TurnComplete) for e in recovered), recovered
        await session.end_input()
        await asyncio.wait_for(reader, 30)
