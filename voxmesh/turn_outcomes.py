"""What the stage sessions (voxtral, orpheus) share about ended turns.

- :class:`ClosedTurns` remembers how recent turns ended, so input that
  crossed a cancel in flight is ignored while input for a finished turn is
  still an error;
- :func:`turn_failed` turns an exception into the ``TurnFailed`` event that
  ends one turn and keeps the stream open, logging it once.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from voxmesh import logs
from voxmesh.errors import VoxmeshError
from voxmesh.v1 import common_pb2


class ClosedTurns:
    """Turn id → "done", "cancelled" or "failed", for the most recent ``keep`` turns."""

    def __init__(self, keep: int = 64) -> None:
        self._keep = keep
        self._outcomes: OrderedDict[int, str] = OrderedDict()

    def remember(self, turn_id: int, outcome: str) -> None:
        self._outcomes[turn_id] = outcome
        while len(self._outcomes) > self._keep:
            self._outcomes.popitem(last=False)

    def get(self, turn_id: int) -> str | None:
        return self._outcomes.get(turn_id)


def turn_failed(turn_id: int, exc: Exception, log: logging.Logger, **fields: object) -> common_pb2.TurnFailed:
    """The event for a turn that ``exc`` ended: domain errors keep their status, anything else is INTERNAL."""
    if isinstance(exc, VoxmeshError):
        log.warning("turn failed: %s", exc, extra=logs.fields(code=exc.status, **fields))
        return common_pb2.TurnFailed(
            turn_id=turn_id, code=exc.status, message=str(exc), retryable=exc.retryable
        )
    log.exception("turn failed", extra=logs.fields(**fields))
    return common_pb2.TurnFailed(
        turn_id=turn_id, code="INTERNAL", message=f"{type(exc).__name__}: {exc}", retryable=False
    )
