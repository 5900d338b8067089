"""Key presses: which keys are taken, what the conversation reads, and the order of what is sent."""

from __future__ import annotations

import asyncio

import pytest

from voxmesh.errors import InvalidArgument
from voxmesh.gateway.key_presses import MAX_DIGITS, press, said
from voxmesh.v1 import conversation_pb2


@pytest.mark.parametrize(
    ("digits", "text"),
    [
        ("5", "The caller pressed 5."),
        ("#", "The caller pressed #."),
        ("1*", "The caller pressed 1 and *."),
        ("0123456789*#ABCD", "The caller pressed 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, *, #, A, B, C and D."),
    ],
)
def test_every_dtmf_key_becomes_text_the_model_can_read(digits: str, text: str) -> None:
    assert said(digits) == text


@pytest.mark.parametrize("digits", ["", "x", "a", "5 ", "1-2", "٣", "\x00", "E", "7" * (MAX_DIGITS + 1)])
def test_anything_else_is_invalid_argument_naming_the_field(digits: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        said(digits)
    assert refused.value.field == "key_press.digits"
    assert str(refused.value).startswith("key_press.digits: ")


def test_the_longest_press_is_taken() -> None:
    assert said("9" * MAX_DIGITS).startswith("The caller pressed 9, 9")


def test_the_typed_turn_opens_first_then_key_pressed_names_it() -> None:
    sent: list[object] = []
    turns = [4]

    async def typed_turn(text: str) -> None:
        sent.append(text)
        turns[0] += 1  # the session opens the key press's turn

    asyncio.run(press("7", typed_turn, lambda: turns[0], sent.append))
    assert sent == [
        "The caller pressed 7.",
        conversation_pb2.ConverseResponse(key_pressed=conversation_pb2.KeyPressed(turn_id=5, digits="7")),
    ]


def test_bad_keys_open_no_turn_and_send_nothing() -> None:
    sent: list[object] = []

    async def typed_turn(text: str) -> None:
        sent.append(text)

    with pytest.raises(InvalidArgument):
        asyncio.run(press("5x", typed_turn, lambda: 1, sent.append))
    assert sent == []
