"""Per-session conversation history under two token budgets.

The session's instructions (system prompt) ride on every prompt, so their
tokens come off the context budget first; past turns get what is left, up
to their own cap, and are dropped oldest first once they pass either. A
long system prompt therefore shortens the remembered conversation; it never
squeezes the reply or fails a turn. After a barge-in the assistant's side
of a turn is replaced by what the user actually heard, so the model never
believes it said words that were cut off.

A turn that called tools keeps its answered calls with their results, in
the order mistral-common's format requires (the user, the assistant's calls,
one result per call, then what the assistant said); calls cancelled with a
barge-in are not kept, so a result that came too late never enters it. Calls
and results count against the same budget as the words.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from voxmesh import logs
from voxmesh.services.voxtral.engine import Message
from voxmesh.services.voxtral.tools import ToolOutcome

log = logging.getLogger(__name__)


@dataclass
class _Exchange:
    turn_id: int
    user: str
    assistant: str
    tokens: int
    tools: list[ToolOutcome] = field(default_factory=list)


class History:
    def __init__(
        self,
        system_prompt: str,
        count_tokens: Callable[[str], int],
        *,
        context_tokens: int,
        history_tokens: int,
    ) -> None:
        """A session's history.

        ``context_tokens``: what the context leaves for the instructions and past
        turns together (after the reply and the current turn); ``history_tokens``:
        the cap on past turns alone.
        """
        self.system_prompt = system_prompt.strip()
        self.context_tokens = context_tokens
        self.history_tokens = history_tokens
        self._count = count_tokens
        #: Prompt cost of the instructions, paid on every turn.
        self.system_tokens = count_tokens(self.system_prompt) if self.system_prompt else 0
        self._exchanges: list[_Exchange] = []

    @property
    def turn_ids(self) -> list[int]:
        return [e.turn_id for e in self._exchanges]

    @property
    def turn_budget(self) -> int:
        """Tokens past turns may use: their cap, or what the context leaves after the instructions."""
        return max(0, min(self.history_tokens, self.context_tokens - self.system_tokens))

    def messages(self, user: Message, instructions: str = "") -> list[Message]:
        """The prompt for a new user turn: instructions, kept exchanges, the turn.

        ``instructions``: the turn's own, in place of the session's for this
        turn only (OpenAI's response.instructions); never recorded. Any
        non-empty value overrides, a blank one with no instructions at all.
        """
        prompt = instructions.strip() if instructions else self.system_prompt
        out = [Message("system", prompt)] if prompt else []
        for exchange in self._exchanges:
            out.append(Message("user", exchange.user))
            if exchange.tools:
                out.append(Message("assistant", tool_calls=tuple(t.call for t in exchange.tools)))
                out += [Message("tool", outcome=t) for t in exchange.tools]
            out.append(Message("assistant", exchange.assistant))
        return [*out, user]

    def record(self, turn_id: int, user: str, assistant: str, tools: Sequence[ToolOutcome] = ()) -> None:
        """Keep an exchange (``tools``: its answered calls, in call order).

        One whose user side has no words is not kept: its reply would follow
        the previous reply with no user turn between them.
        """
        if not user.strip():
            log.info("turn left out of history: no transcript", extra=logs.fields(turn_id=turn_id))
            return
        tokens = self._count(user) + self._count(assistant) + self._tool_tokens(tools)
        self._exchanges.append(_Exchange(turn_id, user, assistant, tokens, list(tools)))
        self._trim()

    def amend(self, turn_id: int, heard: str) -> None:
        """Keep only ``heard`` of a recorded reply (the rest was cut off by a barge-in)."""
        for exchange in self._exchanges:
            if exchange.turn_id == turn_id:
                exchange.assistant = heard
                exchange.tokens = (
                    self._count(exchange.user) + self._count(heard) + self._tool_tokens(exchange.tools)
                )

    def forget(self, turn_id: int) -> None:
        """Drop a recorded exchange (a tentative reply the user spoke on past)."""
        self._exchanges = [e for e in self._exchanges if e.turn_id != turn_id]

    def _tool_tokens(self, tools: Sequence[ToolOutcome]) -> int:
        return sum(
            self._count(f"{t.call.name} {t.call.arguments_json}") + self._count(t.content) for t in tools
        )

    def _trim(self) -> None:
        budget = self.turn_budget
        while self._exchanges and sum(e.tokens for e in self._exchanges) > budget:
            self._exchanges.pop(0)
