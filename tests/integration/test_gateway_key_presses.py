"""Key presses (DTMF) over the Converse stream, on the real CPU mesh (issue 21 item 2).

A KeyPress is answered with a KeyPressed event naming the turn it opened, and
that turn's user side is "The caller pressed N." (the echo loop-back answers
"You said: ...", which is how these tests see what reached the conversation).
A key press during a reply interrupts it as a typed turn does. Bad keys end
the stream with INVALID_ARGUMENT naming key_press.digits (test_gateway_bad_input.py
has those cases over raw gRPC; here through the SDK).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from tests.integration.conftest import Mesh
from tests.integration.test_gateway_bad_input import CONFIG, still_serves
from voxmesh.client import (
    AsyncSession,
    AudioOut,
    Event,
    Interrupted,
    InvalidRequest,
    KeyPressed,
    ReplyText,
    Session,
    TurnComplete,
)
from voxmesh.v1 import conversation_pb2, conversation_pb2_grpc

#: A typed turn whose echoed reply lasts several seconds.
LONG_TEXT = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"


def key_press(digits: str) -> conversation_pb2.ConverseRequest:
    return conversation_pb2.ConverseRequest(key_press=conversation_pb2.KeyPress(digits=digits))


async def test_a_key_press_over_grpc_gets_key_pressed_and_a_turn_with_its_text(mesh: Mesh) -> None:
    end = conversation_pb2.ConverseRequest(
        control=conversation_pb2.Control(action=conversation_pb2.Control.ACTION_END_OF_INPUT)
    )

    async def requests() -> AsyncIterator[conversation_pb2.ConverseRequest]:
        for request in (CONFIG, key_press("5"), end):
            yield request

    async with grpc.aio.insecure_channel(mesh.address) as channel:
        call = conversation_pb2_grpc.ConversationStub(channel).Converse(requests(), timeout=30)
        events = [(e.WhichOneof("event"), e) async for e in call]
        assert await call.code() == grpc.StatusCode.OK
    kinds = [kind for kind, _ in events]
    assert kinds.count("key_pressed") == 1, kinds
    (pressed,) = [e.key_pressed for kind, e in events if kind == "key_pressed"]
    (done,) = [e.turn_complete for kind, e in events if kind == "turn_complete"]
    assert (pressed.digits, pressed.turn_id) == ("5", done.turn_id)
    assert done.transcript == "The caller pressed 5."
    assert "The caller pressed 5." in done.reply_text
    # Before anything of its turn's reply.
    assert kinds.index("key_pressed") < kinds.index("reply_text") < kinds.index("audio")


async def collect_until_complete(session: AsyncSession, turn_id: int) -> list[Event]:
    events: list[Event] = []
    async with asyncio.timeout(30):
        async for event in session.events():
            events.append(event)
            if isinstance(event, TurnComplete) and event.turn_id == turn_id:
                return events
    raise AssertionError(f"the stream ended before turn {turn_id} completed: {events}")


async def test_press_key_during_a_reply_interrupts_it_and_the_next_turn_hears_the_key(mesh: Mesh) -> None:
    async with await AsyncSession.connect(mesh.address) as session:
        await session.send_text(LONG_TEXT)
        events: list[Event] = []
        async with asyncio.timeout(30):
            async for event in session.events():
                events.append(event)
                if isinstance(event, AudioOut):
                    break  # the reply is playing
        await session.press_key("#")
        events += await collect_until_complete(session, 2)
    interrupted = [e for e in events if isinstance(e, Interrupted)]
    pressed = [e for e in events if isinstance(e, KeyPressed)]
    assert [e.turn_id for e in interrupted] == [1], events
    assert pressed == [KeyPressed(turn_id=2, digits="#")]
    # Interrupted (of turn 1), then KeyPressed, then turn 2's reply: as SpeechStarted for a spoken turn.
    assert events.index(interrupted[0]) < events.index(pressed[0])
    reply_2 = [e for e in events if isinstance(e, ReplyText) and e.turn_id == 2]
    assert reply_2 and events.index(pressed[0]) < events.index(reply_2[0])
    done = events[-1]
    assert isinstance(done, TurnComplete)
    assert done.transcript == "The caller pressed #."
    assert "The caller pressed #." in done.reply_text


def test_the_blocking_sdk_presses_several_keys_at_once(mesh: Mesh) -> None:
    with Session.connect(mesh.address) as session:
        session.press_key("12*#")
        session.end_input()
        events = list(session.events())
    (pressed,) = [e for e in events if isinstance(e, KeyPressed)]
    (done,) = [e for e in events if isinstance(e, TurnComplete)]
    assert pressed == KeyPressed(turn_id=done.turn_id, digits="12*#")
    assert done.transcript == "The caller pressed 1, 2, * and #."


@pytest.mark.parametrize("digits", ["x", "a", "", "1" * 33, "٣"])
async def test_a_bad_key_ends_the_session_with_invalid_request_naming_the_field(
    mesh: Mesh, digits: str
) -> None:
    async with await AsyncSession.connect(mesh.address) as session:
        await session.press_key(digits)
        with pytest.raises(InvalidRequest) as refused:
            async with asyncio.timeout(30):
                async for _ in session.events():
                    pass
    assert "key_press.digits" in refused.value.message
    await still_serves(mesh.address)
