"""A stage that is down gives an Error naming it, and the session recovers when it is back."""

from __future__ import annotations

import asyncio

from tests.integration.conftest import Mesh
from voxmesh.client import AsyncSession, AudioOut, Event, StageError, TurnComplete


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


async def test_orpheus_down_then_back(start_mesh) -> None:  # type: ignore[no-untyped-def]
    mesh: Mesh = start_mesh(skip=("orpheus",))
    events: list[Event] = []
    async with await AsyncSession.connect(mesh.address) as session:

        async def read() -> None:
            async for event in session.events():
                events.append(event)

        reader = asyncio.create_task(read())
        first = await _turn(session, events, "hello there")
        errors = [e for e in first if isinstance(e, StageError)]
        assert errors and errors[0].stage == "orpheus" and errors[0].code == "UNAVAILABLE"
        assert errors[0].retryable

        mesh.orpheus.start().wait_serving()
        second: list[Event] = []
        for _ in range(20):  # the gateway's channel reconnects with backoff (<= 2 s)
            second = await _turn(session, events, "hello again")
            if any(isinstance(e, TurnComplete) for e in second):
                break
            await asyncio.sleep(0.5)
        assert any(isinstance(e, TurnComplete) for e in second), second
        assert any(isinstance(e, AudioOut) for e in second)
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
