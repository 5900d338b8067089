"""The conversation's text history, kept by the gateway.

Voxtral keeps a session's history beside its stream, but a stream lives on
one replica: when that replica dies, drains or is scaled in, the history
would go with it. The gateway keeps the same exchanges (what the user said,
what they heard of the reply) and hands them to voxtral in ``RespondConfig``
whenever a stream opens, so any replica can answer the next turn. Voxtral
trims to its token budget; here only a character cap bounds the memory.
"""

from __future__ import annotations

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

    def record(self, turn_id: int, user: str, assistant: str) -> None:
        """Keep a finished turn, or replace what a turn kept (a barge-in cut its reply).

        A turn with no user words is not kept (voxtral does the same: its reply
        would follow the previous reply with no user turn between them).
        """
        if not user.strip():
            return
        for exchange in self._exchanges:
            if exchange.turn_id == turn_id:
                exchange.assistant = assistant
                return
        self._exchanges.append(voxtral_pb2.Exchange(turn_id=turn_id, user=user, assistant=assistant))
        while sum(len(e.user) + len(e.assistant) for e in self._exchanges) > self._max_chars:
            self._exchanges.pop(0)
