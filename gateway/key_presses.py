"""Key presses (DTMF): a ``KeyPress`` becomes a ``KeyPressed`` event and a typed user turn.

A phone edge hears the caller's keypad; the model can only read. The keys
are checked here, then go the way of a ``TextInput`` ("The caller pressed
5."): the same turn, the same barge-in of a reply in progress, the same
history. Once that turn is open the client is told which turn the keys made
(``KeyPressed``), after the ``Interrupted`` of a reply they cut off and before
the new turn's own reply events, as ``SpeechStarted`` is for a spoken turn.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from voxmesh.errors import InvalidArgument
from voxmesh.v1 import conversation_pb2

#: The sixteen DTMF keys.
KEYS = frozenset("0123456789*#ABCD")
#: Most keys in one KeyPress (a phone edge sends one at a time; a client may send a whole PIN).
MAX_DIGITS = 32
FIELD = "key_press.digits"


def said(digits: str) -> str:
    """The user's turn for ``digits``; INVALID_ARGUMENT naming key_press.digits unless 1..32 DTMF keys."""
    if not digits:
        raise InvalidArgument(FIELD, "empty: send 1 to 32 keys, each one of 0-9 * # A-D")
    if len(digits) > MAX_DIGITS:
        raise InvalidArgument(FIELD, f"{len(digits)} keys; at most {MAX_DIGITS} in one KeyPress")
    if bad := sorted(set(digits) - KEYS):
        raise InvalidArgument(FIELD, f"{''.join(bad)!r} is not a key: each must be one of 0-9 * # A-D")
    keys = list(digits)
    words = keys[0] if len(keys) == 1 else f"{', '.join(keys[:-1])} and {keys[-1]}"
    return f"The caller pressed {words}."


async def press(
    digits: str,
    typed_turn: Callable[[str], Awaitable[None]],
    opened_turn_id: Callable[[], int],
    emit: Callable[[conversation_pb2.ConverseResponse], None],
) -> None:
    """Check ``digits``, open their typed turn (the session's TextInput path), then say so to the client."""
    await typed_turn(said(digits))
    emit(
        conversation_pb2.ConverseResponse(
            key_pressed=conversation_pb2.KeyPressed(turn_id=opened_turn_id(), digits=digits)
        )
    )
