"""What voxtral is told on each turn: the session's instructions, a turn's own, added context.

OpenAI Realtime (and so LiveKit and Pipecat) has three ways to instruct the
model: the session's ``instructions``, a ``response.create``'s own
``instructions`` (in force for that response only, *in place of* the
session's: LiveKit joins the two itself before sending), and ``system``
items added to the conversation as it goes; and a session.update may replace
the session's instructions mid-call. Voxtral's RespondConfig holds the
session's first instructions; the rest travel with each turn (``EndOfTurn`` / ``TextTurn``
``instructions``), so they reach any replica and never enter the history.
"""

from __future__ import annotations

from voxmesh.errors import InvalidArgument
from voxmesh.gateway.session_options import MAX_SYSTEM_PROMPT_CHARS


class TurnInstructions:
    def __init__(self, system_prompt: str) -> None:
        self._system_prompt = system_prompt.strip()
        #: Whether an InstructionsUpdate replaced what RespondConfig carries.
        self._replaced = False
        self._context: list[str] = []

    def replace(self, system_prompt: str) -> None:
        """An ``InstructionsUpdate``: the session's instructions from the next turn on."""
        if len(system_prompt) > MAX_SYSTEM_PROMPT_CHARS:
            raise InvalidArgument(
                "instructions.system_prompt", f"longer than {MAX_SYSTEM_PROMPT_CHARS} characters"
            )
        self._system_prompt = system_prompt.strip()
        self._replaced = True

    def add_context(self, text: str) -> None:
        """A ``ContextText``: in force from the next turn on, after the instructions."""
        text = text.strip()
        if not text:
            raise InvalidArgument("context.text", "empty text")
        # Separators count: voxtral's bound on a turn's instructions is this plus the prompt.
        used = sum(len(c) + 2 for c in self._context)
        if used + len(text) + 2 > MAX_SYSTEM_PROMPT_CHARS:
            raise InvalidArgument(
                "context.text",
                f"the session's context would exceed {MAX_SYSTEM_PROMPT_CHARS} characters ({used} used)",
            )
        self._context.append(text)

    def for_turn(self, instructions: str, field: str) -> str:
        """The turn's ``instructions`` for voxtral; "" leaves RespondConfig.system_prompt in force."""
        if len(instructions) > MAX_SYSTEM_PROMPT_CHARS:
            raise InvalidArgument(field, f"longer than {MAX_SYSTEM_PROMPT_CHARS} characters")
        own = instructions.strip()
        if not own and not self._context and not self._replaced:
            return ""
        text = "\n\n".join(part for part in (own or self._system_prompt, *self._context) if part)
        # Instructions replaced by nothing still must override RespondConfig's: a blank
        # line is "no instructions" to voxtral (it strips), unlike "" (the session's).
        return text or "\n"
