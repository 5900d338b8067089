"""Where the voice really ends inside a frame the detector called speech.

webrtcvad (30 ms frames) keeps calling frames speech for 90-150 ms after a word
by design (its "overhang"), and room noise after a recorded word can keep it
going for 300 ms or more; silero's probability lags the same way. Counted from
such frames, a 500 ms hangover is really ~600 ms of silence, and every latency
measured from that "end of speech" is ~100 ms kinder than what the user feels.

So each frame the detector calls speech is looked at in 10 ms blocks: the voice
ends with the last block that stands clear of the room's noise, inside a run of
at least :data:`MIN_RUN_BLOCKS` such blocks (noise bursts and clicks are
shorter than a syllable). The noise level is the median of the blocks in frames
the detector calls silence, which tracks the room as it changes.

Measured on CMU's recordings with their own room noise after a known last voiced
sample (``bench/end_of_speech.py``, BENCHMARKS.md): the detector's frames end
90-780 ms late, the refined end within 10 ms on most; see there for the rest.
"""

from __future__ import annotations

from collections import deque

import numpy as np

#: Block length: DESIGN.md asks for the end of speech within one 10 ms frame.
BLOCK_MS = 10
#: A block is voice when it is this far above the noise level, in dB. The
#: recordings' room noise swings ~8 dB around its median from block to block.
NOISE_MARGIN_DB = 12.0
#: ... and within this range of the loudest recent voice (a near-silent input,
#: e.g. synthetic speech with digital silence, has no useful noise level).
SPEECH_RANGE_DB = 40.0
#: Voice is a run of at least this many blocks above the threshold (30 ms).
MIN_RUN_BLOCKS = 3
#: Blocks of detector-silence the noise level is the median of (1 s).
NOISE_HISTORY_BLOCKS = 100
#: Until this many silent blocks are seen, the quietest block so far stands in.
NOISE_MIN_BLOCKS = 10
#: The loudest-voice level falls by this per block, so an old shout does not
#: raise the threshold for good (1 dB/s).
PEAK_DECAY_DB = 0.01
_FLOOR_DB = -100.0


def _block_levels_db(frame: bytes, block: int) -> np.ndarray:
    samples = np.frombuffer(frame, dtype="<i2").astype(np.float32) / 32768.0
    blocks = samples[: samples.size - samples.size % block].reshape(-1, block)
    power = np.mean(blocks * blocks, axis=1)
    return np.asarray(10.0 * np.log10(np.maximum(power, 1e-10)), dtype=np.float64)


class VoiceEdge:
    """One stream's refinement of the detector's frames to 10 ms blocks."""

    def __init__(self, sample_rate_hz: int) -> None:
        self.block = sample_rate_hz * BLOCK_MS // 1000
        self._silent: deque[float] = deque(maxlen=NOISE_HISTORY_BLOCKS)
        self._quietest = 0.0
        self._peak = _FLOOR_DB
        #: Blocks above the threshold in a row, across frames.
        self._run = 0

    @property
    def noise_db(self) -> float:
        if len(self._silent) >= NOISE_MIN_BLOCKS:
            return float(np.median(self._silent))
        return self._quietest

    def voice_end(self, frame: bytes, voiced: bool) -> int | None:
        """Samples into ``frame`` where its voice ends; None when it holds none.

        ``voiced`` is the detector's call for the frame; a frame it calls
        silence holds no voice and feeds the noise level.
        """
        levels = _block_levels_db(frame, self.block)
        self._quietest = min(self._quietest, float(levels.min())) if levels.size else self._quietest
        if not voiced:
            self._silent.extend(levels.tolist())
            self._run = 0
            return None
        self._peak = max(self._peak - PEAK_DECAY_DB * levels.size, float(levels.max()))
        threshold = max(self.noise_db + NOISE_MARGIN_DB, self._peak - SPEECH_RANGE_DB)
        end = None
        for index, level in enumerate(levels.tolist()):
            self._run = self._run + 1 if level > threshold else 0
            if self._run >= MIN_RUN_BLOCKS:
                end = (index + 1) * self.block
        return end
