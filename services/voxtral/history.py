"""Per-session conversation history with a token budget.

The system prompt is always kept; past turns are dropped oldest first once
their cost passes the budget. After a barge-in the assistant's side of a
turn is replaced by what the user actually heard, so the model never
believes it said words that were cut off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from voxmesh.services.voxtral.engine import Message


@dataclass
class _Exchange:
    turn_id: int
    user: str
    assistant: str
    tokens: int


class History:
    def __init__(self, system_prompt: str, budget_tokens: int, count_tokens: Callable[[str], int]) -> None:
        self.system_prompt = system_prompt
        self.budget_tokens = budget_tokens
        self._count = count_tokens
        self._exchanges: list[_Exchange] = []

    @property
    def turn_ids(self) -> list[int]:
        return [e.turn_id for e in self._exchanges]

    def messages(self, user: Message) -> list[Message]:
        """The prompt for a new user turn: system prompt, kept exchanges, the turn."""
        out = [Message("system", self.system_prompt)] if self.system_prompt else []
        for exchange in self._exchanges:
            out += [Message("user", exchange.user), Message("assistant", exchange.assistant)]
        return [*out, user]

    def record(self, turn_id: int, user: str, assistant: str) -> None:
        tokens = self._count(user) + self._count(assistant)
        self._exchanges.append(_Exchange(turn_id, user, assistant, tokens))
        self._trim()

    def amend(self, turn_id: int, heard: str) -> None:
        """Keep only ``heard`` of a recorded reply (the rest was cut off by a barge-in)."""
        for exchange in self._exchanges:
            if exchange.turn_id == turn_id:
                exchange.assistant = heard
                exchange.tokens = self._count(exchange.user) + self._count(heard)

    def _trim(self) -> None:
        while self._exchanges and sum(e.tokens for e in self._exchanges) > self.budget_tokens:
            self._exchanges.pop(0)
