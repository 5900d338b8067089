"""Turns a stream of per-frame speech/non-speech decisions into turn events.

Pure bookkeeping on the audio clock, no engine and no gRPC: every position is
a sample offset from the first sample of the stream, so the gateway can line
events up with the audio it sent without trusting wall clocks.

- Speech *starts* once ``min_speech`` samples of consecutive voiced frames
  are seen (clicks and coughs are shorter). The utterance reaches back
  ``pre_roll`` samples before the onset so no word onset is lost.
- Speech *ends* once ``hangover`` samples of silence follow the last voiced
  sample; that frame boundary is the endpoint decision. Where in a voiced frame
  the voice ends is the caller's to say (``voice_end``, :mod:`.voice_edge`): a
  frame the detector calls speech but that holds no voice (its overhang after
  a word) counts as silence, so the hangover is real silence. ``hangover`` may
  change between frames (:mod:`.end_of_turn` sets it per pause).
- Speech is *confirmed* once the utterance holds ``confirm_speech`` voiced
  samples (0: never), at most once per utterance: a cough or an "mm-hm" ends
  before that, so the gateway interrupts a reply only for confirmed speech.
- Speech *pauses* once ``pause`` samples of silence follow the last voiced
  one (0: never; once per pause, before the hangover ends it), and *resumes*
  at the next voiced frame of the same utterance: the gateway writes a
  tentative reply in the pause and drops it when the user goes on.
"""

from __future__ import annotations

from dataclasses import dataclass

#: ``Segmenter.feed``'s default: a voiced frame is voice to its last sample.
WHOLE_FRAME = -1


@dataclass(frozen=True)
class SpeechStarted:
    utterance_start_sample: int
    onset_sample: int
    decided_at_sample: int


@dataclass(frozen=True)
class SpeechConfirmed:
    voiced_samples: int
    decided_at_sample: int


@dataclass(frozen=True)
class SpeechPaused:
    last_voiced_sample: int
    decided_at_sample: int


@dataclass(frozen=True)
class SpeechResumed:
    onset_sample: int


@dataclass(frozen=True)
class SpeechEnded:
    last_voiced_sample: int
    decided_at_sample: int


class Segmenter:
    """Feed one decision per frame; get at most one event back per frame."""

    def __init__(
        self, pre_roll: int, hangover: int, min_speech: int, confirm_speech: int = 0, pause: int = 0
    ) -> None:
        self.pre_roll = pre_roll
        self.hangover = hangover
        self.min_speech = min_speech
        self.confirm_speech = confirm_speech
        self.pause = pause
        #: Speaking: a SpeechPaused went out for the current pause.
        self._paused = False
        #: Speaking: voiced samples since the onset, and whether confirmation went out.
        self._voiced = 0
        self._confirmed = False
        self.position = 0
        self.speaking = False
        #: Idle: start of the current run of voiced frames (None outside a run).
        self._run_start: int | None = None
        #: Speaking: one past the last voiced sample.
        self._last_voiced = 0

    @property
    def last_voiced_sample(self) -> int:
        """One past the last voiced sample of the current utterance."""
        return self._last_voiced

    def feed(
        self, voiced: bool, frame_samples: int, voice_end: int | None = WHOLE_FRAME
    ) -> SegmentEvent | None:
        """``voiced``: the detector's call; ``voice_end``: samples into the frame where
        its voice ends, None if it holds none (default: the whole frame when voiced).
        """
        start, end = self.position, self.position + frame_samples
        self.position = end
        if voice_end == WHOLE_FRAME:
            voice_end = frame_samples if voiced else None
        if not self.speaking:
            if not voiced:
                self._run_start = None
                return None
            if self._run_start is None:
                self._run_start = start
            if end - self._run_start < self.min_speech:
                return None
            self.speaking = True
            self._last_voiced = start + voice_end if voice_end is not None else end
            self._voiced = end - self._run_start
            self._confirmed = False
            self._paused = False
            onset, self._run_start = self._run_start, None
            return SpeechStarted(max(0, onset - self.pre_roll), onset, end)
        if voiced and voice_end is not None:
            self._last_voiced = start + voice_end
            self._voiced += frame_samples
            if self._paused:
                self._paused = False
                return SpeechResumed(start)
            if self.confirm_speech and not self._confirmed and self._voiced >= self.confirm_speech:
                self._confirmed = True
                return SpeechConfirmed(self._voiced, end)
            return None
        silent = end - self._last_voiced
        if silent < self.hangover:
            if self.pause and not self._paused and silent >= self.pause:
                self._paused = True
                return SpeechPaused(self._last_voiced, end)
            return None
        self.speaking = False
        return SpeechEnded(self._last_voiced, end)


SegmentEvent = SpeechStarted | SpeechConfirmed | SpeechPaused | SpeechResumed | SpeechEnded
