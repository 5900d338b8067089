"""Per-turn instructions, added context and replaced instructions: what voxtral is told each turn."""

import pytest

from voxmesh.errors import InvalidArgument
from voxmesh.gateway.turn_instructions import TurnInstructions


def test_nothing_special_leaves_the_session_prompt_to_voxtral() -> None:
    assert TurnInstructions("Be brief.").for_turn("", "text.instructions") == ""


def test_a_turns_own_instructions_replace_the_sessions_for_that_turn_only() -> None:
    instructions = TurnInstructions("Be brief.")
    assert instructions.for_turn("Greet the user.", "reply.instructions") == "Greet the user."
    assert instructions.for_turn("", "text.instructions") == ""


def test_context_follows_the_instructions_on_every_later_turn() -> None:
    instructions = TurnInstructions("Be brief.")
    instructions.add_context("The user's name is Ada.")
    assert instructions.for_turn("", "context") == "Be brief.\n\nThe user's name is Ada."
    assert (
        instructions.for_turn("Greet her.", "reply.instructions") == "Greet her.\n\nThe user's name is Ada."
    )


def test_replaced_instructions_override_the_config_even_when_emptied() -> None:
    instructions = TurnInstructions("Be brief.")
    instructions.replace("Speak like a pirate.")
    assert instructions.for_turn("", "context") == "Speak like a pirate."
    instructions.replace("")
    # Non-empty (voxtral's "override") but blank: no instructions at all.
    assert instructions.for_turn("", "context").strip() == ""
    assert instructions.for_turn("", "context") != ""


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda t: t.add_context("   "), "context.text"),
        (lambda t: t.add_context("x" * 8_001), "context.text"),
        (lambda t: t.replace("x" * 8_001), "instructions.system_prompt"),
        (lambda t: t.for_turn("x" * 8_001, "text.instructions"), "text.instructions"),
    ],
)
def test_bad_input_names_the_field(call: object, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        call(TurnInstructions(""))  # type: ignore[operator]
    assert err.value.field == field
