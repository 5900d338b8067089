"""Not every sound is a barge-in: speech during a reply pauses it, and only
speech that lasts interrupts it.

A cough, an "mm-hm" or a laugh is speech to the VAD for a moment, and cutting
the reply off for it is what users of voice assistants complain about most.
So when speech starts while a reply is being produced or played, the gateway
*pauses* the reply (it stops sending the reply's messages and holds them here)
and waits: if vad confirms the speech (``speech_confirmed``: the utterance has
held ``min_speech_ms`` of voiced audio) it is a barge-in — the held messages
are dropped with the turn — and if the speech ends first it was not, and the
held messages go out in order, as if nothing had happened.

Pure bookkeeping, no gRPC or asyncio: the session feeds it and acts on what it
answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter

from voxmesh.v1 import vad_pb2

#: Default voiced audio that makes speech during a reply a barge-in, in ms: a
#: cough (~100-200 ms) or a back-channel "mm-hm" (~200-300 ms) is shorter.
DEFAULT_MIN_SPEECH_MS = 350

SOUNDS_DURING_REPLY = Counter(
    "voxmesh_sounds_during_reply_total",
    "Speech heard while a reply was playing, by what it turned out to be",
    ["outcome"],
)

_Item = tuple[Any, Callable[[], None] | None]


@dataclass
class BargeInGate:
    """One session's pause-then-decide state for speech heard during a reply."""

    #: Voiced audio vad must confirm before a reply is interrupted (0: any speech interrupts at once).
    min_speech_ms: int = DEFAULT_MIN_SPEECH_MS
    #: Messages held while paused, at most; beyond it the reply resumes (never an unbounded buffer).
    max_held: int = 256
    #: The speech that paused the reply, while it is undecided.
    pending: vad_pb2.VoiceStart | None = None
    _held: list[_Item] = field(default_factory=list)
    _overflowed: bool = False

    @property
    def enabled(self) -> bool:
        return self.min_speech_ms > 0

    @property
    def paused(self) -> bool:
        return self.pending is not None

    def pause(self, start: vad_pb2.VoiceStart) -> None:
        """Speech started during a reply: hold the reply from now on."""
        self.pending = start
        self._overflowed = False

    def hold(self, item: _Item) -> list[_Item]:
        """What to send now: nothing while paused (``item`` is kept), else ``item``.

        Full: everything held goes out and holding stops, but the speech stays
        pending, so its confirmation still interrupts the reply.
        """
        if self.pending is None or self._overflowed:
            return [item]
        if len(self._held) >= self.max_held:
            self._overflowed = True
            held, self._held = [*self._held, item], []
            return held
        self._held.append(item)
        return []

    def confirmed(self) -> vad_pb2.VoiceStart | None:
        """Confirmed by vad: a barge-in. The held reply is dropped; returns the speech's start."""
        start, self.pending = self.pending, None
        if start is not None:
            SOUNDS_DURING_REPLY.labels("barge_in").inc()
        self._held.clear()
        return start

    def ended(self) -> list[_Item]:
        """The speech ended unconfirmed: not a barge-in. Returns the held reply, to send in order."""
        if self.pending is not None:
            SOUNDS_DURING_REPLY.labels("ignored").inc()
        held, self._held, self.pending = self._held, [], None
        return held
