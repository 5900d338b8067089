"""Where a real-time player is in each turn's reply, for PlaybackPosition reports.

A client that plays the reply as it arrives starts a turn's audio with its
first chunk, plays at real time, and waits when the audio runs out (a slow
phrase); a new turn's audio replaces the old (the gateway interrupted it). The
gateway uses the reports to keep, on a barge-in, the reply up to the word that
was playing (``Interrupted.spoken_text``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PlaybackClock:
    turn_id: int = 0
    #: Seconds of the turn's audio received, and played at ``_anchor`` (perf_counter s).
    _queued_s: float = 0.0
    _base_s: float = 0.0
    _anchor: float = 0.0

    def on_audio(self, turn_id: int, seconds: float, now: float) -> None:
        if turn_id != self.turn_id:
            self.turn_id, self._queued_s, self._base_s, self._anchor = turn_id, 0.0, 0.0, now
        if self.played_s(now) >= self._queued_s:
            # Starved (or the first chunk): playback resumes now, from where it stopped.
            self._base_s, self._anchor = self._queued_s, now
        self._queued_s += seconds

    def played_s(self, now: float) -> float:
        return min(self._queued_s, self._base_s + max(0.0, now - self._anchor))

    def position_ms(self, now: float) -> tuple[int, float]:
        """(turn id, ms of its reply played by ``now``); turn id 0 before any reply."""
        return self.turn_id, 1000.0 * self.played_s(now)
