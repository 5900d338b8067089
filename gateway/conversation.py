"""The conversation's text history, kept by the gateway.

Voxtral keeps a session's history beside its stream, but a stream lives on
one replica: when that replica dies, drains or is scaled in, the history
would go with it. The gateway keeps the same exchanges (what the user said,
what they heard of the reply) and hands them to voxtral in ``RespondConfig``
whenever a stream opens, so any replica can answer the next turn. Voxtral
trims to its token budget; here only a character cap bounds the memory.
"""

from __future__ import annotations

from collections.abc import Sequence

from voxmesh.v1 import voxtral_pb2

#: Characters of history kept (oldest dropped first): far above any model's
#: history budget, well under a stage's 1 MiB message limit.
MAX_HISTORY_CHARS = 200_000


class ConversationHistory:
    def __init__(self, max_chars: int = MAX_HISTORY_CHARS) -> None:
        self._max_chars = max_chars
        self._exchanges: list[voxtral_pb2.Exchange] = []

    @property
    def exchanges(self) -> list[voxtral_pb2.Exchange]:
        return list(self._exchanges)

    def record(
        self, turn_id: int, user: str, assistant: str, tool_calls: Sequence[voxtral_pb2.ToolExchange] = ()
    ) -> None:
        """Keep a finished turn, or replace what a turn kept (a barge-in cut its reply).

        ``tool_calls``: its answered calls with their results (a cancelled call is
        never passed here). A turn with no user words is not kept (voxtral does the same: its reply
        would follow the previous reply with no user turn between them).
        """
        if not user.strip():
            return
        for exchange in self._exchanges:
            if exchange.turn_id == turn_id:
                exchange.assistant = assistant
                del exchange.tool_calls[:]
                exchange.tool_calls.extend(tool_calls)
                return
        self._exchanges.append(
            voxtral_pb2.Exchange(turn_id=turn_id, user=user, assistant=assistant, tool_calls=tool_calls)
        )
        while sum(_chars(e) for e in self._exchanges) > self._max_chars:
            self._exchanges.pop(0)


def _chars(exchange: voxtral_pb2.Exchange) -> int:
    return len(exchange.user) + len(exchange.assistant) + sum(t.ByteSize() for t in exchange.tool_calls)
