"""What the user heard of an interrupted reply, to the word.

The conversation history must keep what the user actually heard: an assistant
that "remembers" saying the half it never played answers the next turn from a
conversation that did not happen. Keeping whole phrases only (as before) loses
the heard half of a long phrase, so the cut goes inside the phrase:

- Where playback was: the client's last :class:`PlaybackPosition` report (ms
  of the turn's audio played, as OpenAI Realtime's ``audio_end_ms``), else an
  estimate — playback at real time from the first chunk sent, restarting when
  sending paused (the same model as :meth:`Turn.note_audio_sent`).
- Which word was playing: each phrase's span in the turn's audio is known
  (orpheus' ``phrase_done`` follows the phrase's last chunk); inside it, words
  get a share of the span in proportion to their letters (TTS time is roughly
  proportional to text length), and the word playing at the position is kept —
  the user heard it begin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from voxmesh.errors import InvalidArgument


@dataclass(frozen=True)
class PhraseSpan:
    text: str
    #: First and one-past-last sample of the phrase in the turn's reply audio.
    start_sample: int
    end_sample: int


@dataclass
class ReplyPlayback:
    """One turn's reply as the client plays it."""

    spans: list[PhraseSpan] = field(default_factory=list)
    #: The client's last report, in ms of the turn's audio played (None: never reported).
    reported_ms: float | None = None

    def phrase_done(self, text: str, end_sample: int) -> None:
        """A phrase's audio has all been received; ``end_sample`` counts the turn's samples so far."""
        start = self.spans[-1].end_sample if self.spans else 0
        self.spans.append(PhraseSpan(text, start, max(start, end_sample)))

    def report(self, played_ms: float) -> None:
        if not math.isfinite(played_ms) or played_ms < 0:
            raise InvalidArgument("playback.played_ms", f"must be a finite number >= 0, got {played_ms}")
        # Reports can cross on the wire; playback never goes back.
        self.reported_ms = max(played_ms, self.reported_ms or 0.0)

    def played_ms(self, estimate_ms: float) -> float:
        return self.reported_ms if self.reported_ms is not None else estimate_ms

    def heard_text(self, played_ms: float, sample_rate_hz: int) -> str:
        """The reply up to and including the word playing at ``played_ms``."""
        position = played_ms * sample_rate_hz / 1000.0
        words: list[str] = []
        for span in self.spans:
            if position >= span.end_sample:
                words += span.text.split()
                continue
            if position > span.start_sample:
                words += _words_begun(span, position)
            break
        return " ".join(words)


def _words_begun(span: PhraseSpan, position: float) -> list[str]:
    """The words of ``span`` that had begun playing at ``position`` (inside the span)."""
    words = span.text.split()
    letters = sum(len(word) + 1 for word in words)  # +1: the pause after each word
    share = (position - span.start_sample) / max(1, span.end_sample - span.start_sample)
    begun, before = [], 0
    for word in words:
        if before / letters >= share:
            break
        begun.append(word)
        before += len(word) + 1
    return begun


def estimated_played_ms(samples_sent: int, playout_end: float, now: float, sample_rate_hz: int) -> float:
    """Playback position without a report: everything sent, less what is still to play at ``now``."""
    if samples_sent == 0:
        return 0.0
    unplayed_s = max(0.0, playout_end - now)
    return max(0.0, 1000.0 * samples_sent / sample_rate_hz - 1000.0 * unplayed_s)
