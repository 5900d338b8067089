"""A listening turn's end: when it comes, and what may already be in flight before it.

A turn listens from vad's speech_started until its endpoint. Two things can be
under way in that time, and this module owns both, with every transition
between them (the session only dispatches vad's events here and carries out
what comes back):

- a **tentative reply** (gateway.speculation): in a pause of ``--speculate-after-ms``
  the utterance ends at voxtral early and the reply is written and synthesised,
  its events held; speech that resumes drops it unseen;
- a **held endpoint** (gateway.unfinished_words): vad called the end of speech
  but the words so far end unfinished ("… book a"), so the turn keeps
  listening until the pause reaches ``--hold-unfinished-ms`` from the last
  voiced sample; speech inside it continues the same turn.

::

            pause ─────────▶ TENTATIVE ── resumed ──▶ PLAIN (reply dropped)
    PLAIN ─┤                    │
            vad endpoint        vad endpoint
              │ words finished    │ words finished ──▶ ENDED (reply released)
              │   ──▶ ENDED       │ words unfinished ─▶ HELD + TENTATIVE
              │ words unfinished
              ▼
            HELD ── speech ──▶ PLAIN (same turn; a tentative reply is dropped)
                 ── pause ran out (audio clock, or wall clock if the audio stopped) ──▶ ENDED

The decision at vad's endpoint (:meth:`Listening.at_vad_endpoint`) weighs every
signal the gateway has: the pause vad waited (its hangover: Smart Turn's short
one when the model heard a finished turn, the maximum when not) and the model's
probability for it (``VoiceEnd.turn_complete_probability``), the words so far,
and the transcriber's confidence in the last of them
(``TranscriptUpdate.last_word_confidence``). A turn that sounds and reads
finished ends at once; one that reads unfinished waits until the hold's pause
has passed, however it sounded (Smart Turn calls "book me a" finished with
P > 0.9 on Piper speech), unless its last word is doubtful and the model is
sure the turn sounds finished: a misheard word does not decide alone
(gateway.unfinished_words).

Every position is a sample of the session's 16 kHz audio clock.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from voxmesh import logs
from voxmesh.audio import PIPELINE_SAMPLE_RATE_HZ
from voxmesh.gateway.speculation import Speculation, TentativeReply
from voxmesh.gateway.unfinished_words import EndpointHold

log = logging.getLogger(__name__)


class ListeningPhase(enum.Enum):
    #: The utterance streams to voxtral; nothing is decided.
    PLAIN = "plain"
    #: A reply is being written in the user's pause, held until the endpoint.
    TENTATIVE = "tentative"
    #: vad's endpoint came and is held: the words so far end unfinished.
    HELD = "held"
    #: Held, with a tentative reply in flight (released with it, or dropped).
    HELD_TENTATIVE = "held+tentative"
    #: The endpoint stands: the turn is answered.
    ENDED = "ended"


@dataclass(frozen=True)
class HeldEndpoint:
    """vad's endpoint, held while the words end unfinished.

    Positions are samples of the session's audio clock (not of one vad
    stream's), so a vad reconnect during the hold moves nothing.
    """

    last_voiced: int
    #: The pause's end, if silence lasts: the endpoint is released there.
    release_at: int
    #: The same on the wall clock, for a client that stopped sending audio.
    release_by: float


@dataclass(frozen=True)
class Endpoint:
    """The turn is over: voice ended at ``last_voiced``, decided at ``decided_at``."""

    last_voiced: int
    decided_at: int
    #: A reply written in the pause was confirmed: the turn's reply is speculative.
    speculative: bool = False
    #: Its held stage events, (handler name, message) in arrival order, to replay now.
    replay: list[tuple[str, Any]] = field(default_factory=list)


class Listening:
    """One turn's listening phase: its tentative reply and held endpoint, and their transitions."""

    def __init__(self, turn_id: int, speculation: Speculation, hold: EndpointHold) -> None:
        self.turn_id = turn_id
        self._speculation = speculation
        self._hold = hold
        self.tentative: TentativeReply | None = None
        self.held: HeldEndpoint | None = None
        self._ended = False

    @property
    def phase(self) -> ListeningPhase:
        if self._ended:
            return ListeningPhase.ENDED
        if self.held is not None:
            return ListeningPhase.HELD_TENTATIVE if self.tentative is not None else ListeningPhase.HELD
        return ListeningPhase.TENTATIVE if self.tentative is not None else ListeningPhase.PLAIN

    @property
    def utterance_at_voxtral(self) -> bool:
        """Utterance audio goes on to voxtral (not once a tentative reply ended voxtral's turn)."""
        return self.tentative is None and not self._ended

    def words_so_far(self, live_transcript: str) -> str:
        """The latest transcript of the utterance: a tentative reply's, else the live one."""
        if self.tentative is not None and self.tentative.transcript:
            return self.tentative.transcript
        return live_transcript

    def confidence_so_far(self, live_confidence: float | None) -> float | None:
        """The transcriber's confidence in the last of :meth:`words_so_far` (None: not known)."""
        if self.tentative is not None and self.tentative.transcript:
            return self.tentative.last_word_confidence
        return live_confidence

    # ------------------------------------------------------------ transitions

    def paused(self) -> bool:
        """On vad's speech_paused. True: a tentative reply starts (end the utterance at voxtral now)."""
        if self._ended or not self._speculation.enabled or self.tentative is not None:
            return False
        self.tentative = self._speculation.start()
        return True

    def resumed(self) -> TentativeReply | None:
        """On vad's speech_resumed (speech after a pause, before any endpoint).

        Returns the tentative reply dropped (the session cancels its stage work
        and sends the utterance again), if one was in flight.
        """
        if self._ended:
            return None
        dropped, self.tentative = self.tentative, None
        if dropped is not None:
            seconds = self._speculation.discarded(dropped)
            log.info(
                "tentative reply discarded: the user went on",
                extra=logs.fields(turn_id=self.turn_id, seconds=round(seconds, 3)),
            )
        return dropped

    def spoke_in_hold(self) -> TentativeReply | None:
        """On vad's speech_started inside a held endpoint's pause: the same turn goes on.

        Returns the tentative reply dropped, as :meth:`resumed`.
        """
        if self._ended or self.held is None:
            return None
        self.held = None
        self._hold.continued()
        log.info("held endpoint: the user went on, one turn", extra=logs.fields(turn_id=self.turn_id))
        return self.resumed()

    def at_vad_endpoint(
        self,
        last_voiced: int,
        decided_at: int,
        words: str,
        language: str,
        wall_of_last_voiced: float | None,
        last_word_confidence: float | None = None,
        turn_complete_probability: float | None = None,
    ) -> Endpoint | None:
        """On vad's speech_ended: the endpoint now, or None when it is held (see the module's table).

        ``last_word_confidence``: the transcriber's in the last of ``words``;
        ``turn_complete_probability``: vad's end-of-turn model's for this pause (None: not judged).
        """
        if self._ended:
            return None
        release_at = last_voiced + self._hold.hold_ms * PIPELINE_SAMPLE_RATE_HZ // 1000
        if release_at > decided_at and self._hold.should_hold(
            words, language, last_word_confidence, turn_complete_probability
        ):
            self.held = HeldEndpoint(
                last_voiced=last_voiced,
                release_at=release_at,
                release_by=(wall_of_last_voiced or time.perf_counter()) + self._hold.hold_ms / 1000,
            )
            self._hold.held()
            log.info(
                "endpoint held: the words so far end unfinished",
                # What the user said stays out of the logs (nothing else here logs it either).
                extra=logs.fields(turn_id=self.turn_id, hold_ms=self._hold.hold_ms),
            )
            return None
        return self.end(last_voiced, decided_at)

    def due(self, head: int, now: float) -> Endpoint | None:
        """A held endpoint whose pause ran out (on the audio clock, or the wall clock
        for a client that stopped sending audio): the endpoint, at vad's last voiced sample.
        """
        held = self.held
        if held is None or self._ended or (head < held.release_at and now < held.release_by):
            return None
        return self.end(held.last_voiced, head)

    def end(self, last_voiced: int, decided_at: int) -> Endpoint:
        """The endpoint stands (vad's, a released hold's, or the input's end)."""
        if self.held is not None:
            self.held = None
            self._hold.released()
        self._ended = True
        tentative, self.tentative = self.tentative, None
        if tentative is None:
            return Endpoint(last_voiced, decided_at)
        return Endpoint(
            last_voiced, decided_at, speculative=True, replay=self._speculation.confirmed(tentative)
        )

    def end_of_input(self, head: int) -> Endpoint:
        """The client's input ended mid-utterance or inside a held pause: that is the endpoint."""
        held = self.held
        return self.end(held.last_voiced if held is not None else head, head)

    def abandon(self) -> TentativeReply | None:
        """The turn is cut (barge-in, a typed turn, a failed stage): its tentative reply is dropped."""
        self._ended = True
        self.held = None
        dropped, self.tentative = self.tentative, None
        if dropped is not None:
            self._speculation.discarded(dropped)
        return dropped
