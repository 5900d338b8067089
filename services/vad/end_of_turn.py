"""The hangover of each pause, set by an end-of-turn model.

Silence alone cannot tell "What time is it?" from "I'd like to… [pause] book a
table": a fixed hangover is either slow on the first or cuts the second. Here
each pause is judged once, when it reaches ``complete_hangover``: if the model
says the turn sounds finished, the turn ends right there; if not, the pause may
grow to ``incomplete_hangover``, the hard maximum, before the turn is called
ended whatever was said. Speech inside the pause starts a new pause (and a new
judgement) later.

A third, *doubtful* band (``doubtful_hangover``, ``doubtful_threshold``) sits
between the two: a pause the model gives some chance of being final, but not
enough to end at once, ends at a middle length instead of the maximum (measured
on recorded speech, Smart Turn leaves a quarter of complete sentences below
0.5: bench/end_of_turn_curve.py). The model is called once per pause either way.

Every position is on the audio clock, and the frame that reaches the judging
point waits for the verdict before the next one is classified, so the events do
not depend on how fast the model runs, only on the audio.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from prometheus_client import Counter, Histogram

from voxmesh import logs
from voxmesh.metrics import LATENCY_BUCKETS_S
from voxmesh.services.vad.segmenter import Segmenter, SegmentEvent, SpeechStarted
from voxmesh.services.vad.voice_edge import VoiceEdge

log = logging.getLogger(__name__)

END_OF_TURN_LATENCY = Histogram(
    "voxmesh_end_of_turn_model_seconds",
    "Wall time of one end-of-turn model call (features + inference)",
    buckets=LATENCY_BUCKETS_S,
)
END_OF_TURN_VERDICTS = Counter(
    "voxmesh_end_of_turn_verdicts_total", "Pauses judged by the end-of-turn model", ["verdict"]
)

#: Audio the model looks at, at most (Smart Turn's window).
HISTORY_S = 8


class TurnModel(Protocol):
    async def judge(self, audio: np.ndarray, sample_rate_hz: int) -> tuple[float, float]:
        """(P(turn complete) for audio ending at the pause, seconds the call took), off the event loop."""
        ...


@dataclass(frozen=True)
class EndOfTurnPolicy:
    """Pause lengths in samples at the stream's rate."""

    #: The pause is judged when it reaches this; the turn ends here if complete.
    complete_hangover: int
    #: The hard maximum: the turn ends here whatever the model said.
    incomplete_hangover: int
    #: Probability at or above which the turn counts as complete.
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.complete_hangover <= self.incomplete_hangover:
            raise ValueError("need 0 < complete_hangover <= incomplete_hangover")


@dataclass(frozen=True)
class PauseVerdict:
    #: The pause's first unvoiced sample and the sample it was judged at.
    last_voiced_sample: int
    judged_at_sample: int
    probability: float
    complete: bool


class Endpointer:
    """One stream's segmenter, with the hangover per pause from a :class:`TurnModel`.

    Without a model it is the segmenter alone (silence-only endpointing).
    """

    def __init__(
        self,
        segmenter: Segmenter,
        sample_rate_hz: int,
        frame_samples: int,
        model: TurnModel | None = None,
        policy: EndOfTurnPolicy | None = None,
        doubtful_hangover: int = 0,
        doubtful_threshold: float = 0.0,
        voice_edge: bool = True,
    ) -> None:
        """``doubtful_hangover``: the pause (samples) at which a turn judged with
        ``doubtful_threshold`` <= P < ``policy.threshold`` ends; 0: none (the maximum).
        """
        if (model is None) != (policy is None):
            raise ValueError("a model needs a policy and a policy a model")
        if doubtful_hangover and policy is not None:
            # Kept inside the policy's band whatever scaling the policy had (e.g. a session's eagerness).
            doubtful_hangover = min(
                max(doubtful_hangover, policy.complete_hangover), policy.incomplete_hangover
            )
        self.doubtful_hangover = doubtful_hangover
        self.doubtful_threshold = doubtful_threshold
        self.segmenter = segmenter
        self.rate = sample_rate_hz
        #: Where in a voiced frame the voice really ends: pauses count from there
        #: (None: the detector's frames, overhang included).
        self.edge = VoiceEdge(sample_rate_hz) if voice_edge else None
        self.model = model
        self.policy = policy
        #: The latest pause's verdict, for logs and tests.
        self.last_verdict: PauseVerdict | None = None
        self._judged = False
        self._utterance_start = 0
        # (first sample, frame bytes), enough frames to fill the model's window.
        self._history: deque[tuple[int, bytes]] = deque(
            maxlen=-(-HISTORY_S * sample_rate_hz // frame_samples) if model else 0
        )
        if policy is not None:
            segmenter.hangover = policy.incomplete_hangover

    async def feed(self, frame: bytes, voiced: bool) -> SegmentEvent | None:
        segmenter = self.segmenter
        frame_samples = len(frame) // 2
        voice_end = (
            self.edge.voice_end(frame, voiced)
            if self.edge is not None
            else (frame_samples if voiced else None)
        )
        policy = self.policy
        if policy is not None:
            self._history.append((segmenter.position, frame))
            if voice_end is not None:
                # A new pause will come, judged afresh; until then the maximum holds.
                self._judged = False
                segmenter.hangover = policy.incomplete_hangover
            elif segmenter.speaking and not self._judged:
                pause = segmenter.position + frame_samples - segmenter.last_voiced_sample
                if pause >= policy.complete_hangover:
                    self._judged = True
                    verdict = await self._judge(segmenter.position + frame_samples)
                    segmenter.hangover = self._hangover_for(verdict.probability, policy)
        event = segmenter.feed(voiced, frame_samples, voice_end)
        if isinstance(event, SpeechStarted):
            self._utterance_start = event.utterance_start_sample
        return event

    def probability_for(self, last_voiced_sample: int) -> float | None:
        """The model's P(complete) for the pause that began at ``last_voiced_sample``, if it was judged."""
        verdict = self.last_verdict
        if verdict is None or verdict.last_voiced_sample != last_voiced_sample:
            return None
        return verdict.probability

    def _hangover_for(self, probability: float, policy: EndOfTurnPolicy) -> int:
        if probability >= policy.threshold:
            return policy.complete_hangover
        if self.doubtful_hangover and probability >= self.doubtful_threshold:
            return self.doubtful_hangover
        return policy.incomplete_hangover

    async def _judge(self, at_sample: int) -> PauseVerdict:
        assert self.model is not None and self.policy is not None
        utterance = b"".join(frame for start, frame in self._history if start >= self._utterance_start)
        audio = np.frombuffer(utterance, dtype="<i2").astype(np.float32) / 32768.0
        # ~60 ms of CPU: off the event loop, so other streams keep flowing.
        probability, seconds = await self.model.judge(audio, self.rate)
        verdict = PauseVerdict(
            last_voiced_sample=self.segmenter.last_voiced_sample,
            judged_at_sample=at_sample,
            probability=probability,
            complete=probability >= self.policy.threshold,
        )
        self.last_verdict = verdict
        END_OF_TURN_LATENCY.observe(seconds)
        END_OF_TURN_VERDICTS.labels("complete" if verdict.complete else "incomplete").inc()
        log.info(
            "pause judged",
            extra=logs.fields(
                probability=round(probability, 3),
                complete=verdict.complete,
                last_voiced_sample=verdict.last_voiced_sample,
                model_ms=round(seconds * 1000, 1),
            ),
        )
        return verdict
