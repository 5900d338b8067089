"""The session's input audio clock: recent audio at 16 kHz with absolute sample
offsets, and when each chunk arrived.

Pre-roll comes from here (the VAD calls speech started a little after the
onset; the audio before it must still reach voxtral), and so does t_end's wall
time: a real-time client sends each chunk right after its last sample was
captured, so sample ``s`` of a chunk that ended at ``end`` and arrived at
``t`` was spoken at ``t - (end - s) / rate``.
"""

from __future__ import annotations

import bisect
from collections import deque

import numpy as np


class AudioClock:
    def __init__(self, sample_rate_hz: int, keep_s: float = 10.0) -> None:
        self.sample_rate_hz = sample_rate_hz
        self._keep = int(keep_s * sample_rate_hz)
        self._chunks: deque[tuple[int, np.ndarray]] = deque()  # (start sample, samples)
        self._arrivals: deque[tuple[int, float]] = deque()  # (end sample, arrival time)
        self.head = 0  # one past the newest sample

    def append(self, samples: np.ndarray, arrived_at: float) -> None:
        if len(samples) == 0:
            return
        self._chunks.append((self.head, samples))
        self.head += len(samples)
        self._arrivals.append((self.head, arrived_at))
        while self._chunks and self._chunks[0][0] + len(self._chunks[0][1]) < self.head - self._keep:
            self._chunks.popleft()
        while len(self._arrivals) > 1 and self._arrivals[0][0] < self.head - self._keep:
            self._arrivals.popleft()

    def since(self, start_sample: int) -> np.ndarray:
        """Samples from ``start_sample`` to the head (as far back as still kept)."""
        parts = [
            samples[max(0, start_sample - start) :]
            for start, samples in self._chunks
            if start + len(samples) > start_sample
        ]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    def wall_time_of(self, sample: int) -> float | None:
        """When ``sample`` was spoken, by the arrival time of the chunk holding it."""
        ends = [end for end, _ in self._arrivals]
        i = bisect.bisect_left(ends, sample)
        if i == len(ends):
            return None
        end, arrived = self._arrivals[i]
        return arrived - (end - sample) / self.sample_rate_hz

    def offset_ms(self, sample: int) -> float:
        return 1000.0 * sample / self.sample_rate_hz
