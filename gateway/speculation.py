"""Speculative replies: start the reply in the user's pause, release it at the endpoint.

Most of what a user waits for after speaking is the VAD's hangover: the
silence it needs before it calls the turn over (500 ms by default). The reply
itself is ready 50-100 ms after the endpoint on the CPU mesh. So when vad
reports a pause (``speech_paused``, ``--speculate-after-ms`` of silence, well
inside the hangover), the session ends the utterance at voxtral at once and
lets voxtral write the reply and orpheus synthesise it, *tentatively*: every
event of that work is held here, nothing reaches the client. Then either

- the endpoint comes (``speech_ended``): the turn is confirmed and the held
  events are replayed through the session's normal handlers, so the first
  reply audio goes out right at the endpoint instead of after it; or
- the user speaks again first (``speech_resumed``): the tentative work is
  cancelled with ``CancelTurn.discard`` (voxtral keeps nothing of it in the
  history), the utterance is sent again from its first sample under a new
  stage turn id, and listening goes on as one turn. The client saw nothing.

The stage turn id (what voxtral and orpheus see) is therefore not always the
client's turn id: a discarded attempt uses one up. Stage ids only grow, as
the stages require.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from voxmesh.metrics import SPECULATIVE_DISCARDED_SECONDS, SPECULATIVE_TURNS


@dataclass
class TentativeReply:
    """One tentative attempt at a turn's reply: what the stages sent, held in order."""

    started: float = field(default_factory=time.perf_counter)
    #: (handler name, stage message) in arrival order, replayed on confirmation.
    held: list[tuple[str, Any]] = field(default_factory=list)
    #: The reply's first text delta went to orpheus (its stream was opened for it).
    fed_orpheus: bool = False
    #: The attempt's latest transcript (the user's words up to the pause).
    transcript: str = ""
    #: The transcriber's confidence in its last word, once final (None: not known).
    last_word_confidence: float | None = None

    def hold(self, source: str, message: Any) -> None:
        self.held.append((source, message))
        if source == "voxtral" and message.WhichOneof("event") == "transcript":
            self.transcript = message.transcript.text
            self.last_word_confidence = last_word_confidence(message.transcript)


def last_word_confidence(update: Any) -> float | None:
    """A voxtral TranscriptUpdate's confidence in its last word, or None where the transcriber gave none."""
    return update.last_word_confidence if update.HasField("last_word_confidence") else None


class Speculation:
    """The session's policy: when to start a tentative reply, and its counts."""

    def __init__(self, after_ms: int) -> None:
        #: Silence after which a pause starts a tentative reply; 0: never speculate.
        self.after_ms = after_ms

    @property
    def enabled(self) -> bool:
        return self.after_ms > 0

    def start(self) -> TentativeReply:
        SPECULATIVE_TURNS.labels("started").inc()
        return TentativeReply()

    def confirmed(self, reply: TentativeReply) -> list[tuple[str, Any]]:
        """The endpoint came: the held stage messages, to replay in order."""
        SPECULATIVE_TURNS.labels("confirmed").inc()
        held, reply.held = reply.held, []
        return held

    def discarded(self, reply: TentativeReply) -> float:
        """The user spoke on: seconds of stage work thrown away."""
        seconds = time.perf_counter() - reply.started
        SPECULATIVE_TURNS.labels("discarded").inc()
        SPECULATIVE_DISCARDED_SECONDS.inc(seconds)
        reply.held.clear()
        return seconds
