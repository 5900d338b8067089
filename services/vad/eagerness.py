"""A session's semantic end-of-turn eagerness → the end-of-turn model's policy.

OpenAI Realtime's ``semantic_vad`` takes an ``eagerness`` (low, medium, high;
auto is medium): how soon the model answers once the user may be done. Here
it scales the operator's Smart Turn settings (``--turn-complete-hangover-ms``,
``--turn-incomplete-hangover-ms``, ``--turn-complete-threshold``), so the
operator's tuning stays the reference point and MEDIUM is exactly it:

| eagerness | pause judged at | hard maximum | P(complete) needed |
| --- | --- | --- | --- |
| low | 1.5 × | 2 × | threshold + 0.2 (at most 0.95) |
| medium | 1 × | 1 × | threshold |
| high | 0.75 × | 0.6 × (never below the judged pause) | threshold − 0.2 (at least 0.05) |

The doubtful band's pause (``--turn-doubtful-hangover-ms``) scales as the
hard maximum does (the Endpointer keeps it between the other two).

Low lets a user think aloud (a pause must sound surely finished, and an
unfinished one waits twice as long); high answers a terse user sooner.
"""

from __future__ import annotations

from voxmesh.services.vad.end_of_turn import EndOfTurnPolicy
from voxmesh.v1 import common_pb2

#: eagerness → (judged-pause factor, maximum-pause factor, threshold shift).
_SCALES: dict[int, tuple[float, float, float]] = {
    common_pb2.EAGERNESS_LOW: (1.5, 2.0, 0.2),
    common_pb2.EAGERNESS_MEDIUM: (1.0, 1.0, 0.0),
    common_pb2.EAGERNESS_HIGH: (0.75, 0.6, -0.2),
}


def policy_for(base: EndOfTurnPolicy, eagerness: int) -> EndOfTurnPolicy:
    """``base`` (the service's settings) scaled for ``eagerness``; UNSPECIFIED is MEDIUM."""
    judged, maximum, shift = _SCALES.get(eagerness, _SCALES[common_pb2.EAGERNESS_MEDIUM])
    complete = max(1, round(base.complete_hangover * judged))
    return EndOfTurnPolicy(
        complete_hangover=complete,
        incomplete_hangover=max(complete, round(base.incomplete_hangover * maximum)),
        threshold=min(0.95, max(0.05, base.threshold + shift)) if shift else base.threshold,
    )


def doubtful_for(doubtful_hangover: int, eagerness: int) -> int:
    """The doubtful band's pause for ``eagerness``, scaled as the hard maximum is; 0 stays 0 (no band)."""
    _, maximum, _ = _SCALES.get(eagerness, _SCALES[common_pb2.EAGERNESS_MEDIUM])
    return round(doubtful_hangover * maximum)
