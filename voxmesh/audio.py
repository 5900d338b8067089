"""Audio on the wire (PCM16 bytes) and in the process (float32 numpy arrays).

Sample rates travel with the audio: every function takes the rate it needs.
Resampling is soxr's streaming resampler, which keeps its filter state
between chunks so chunk boundaries add no clicks.
"""

from __future__ import annotations

import numpy as np
import soxr

from voxmesh.errors import InvalidArgument, InvalidAudio

#: Largest audio payload accepted in one message (256 KiB, ~8 s at 16 kHz).
MAX_CHUNK_BYTES = 256 * 1024
MIN_SAMPLE_RATE_HZ = 8_000
MAX_SAMPLE_RATE_HZ = 48_000
#: The rate every internal stage hears user audio at.
PIPELINE_SAMPLE_RATE_HZ = 16_000
#: The default reply rate (Orpheus/SNAC's native rate).
DEFAULT_OUTPUT_SAMPLE_RATE_HZ = 24_000


def check_sample_rate(rate_hz: int, field: str, default: int) -> int:
    """Return the rate to use for a config field (0 = default) or raise naming the field."""
    if rate_hz == 0:
        return default
    if not MIN_SAMPLE_RATE_HZ <= rate_hz <= MAX_SAMPLE_RATE_HZ:
        raise InvalidArgument(field, f"{rate_hz} Hz is outside {MIN_SAMPLE_RATE_HZ}..{MAX_SAMPLE_RATE_HZ} Hz")
    return rate_hz


def pcm16_to_float(pcm: bytes, field: str = "audio") -> np.ndarray:
    """Decode PCM16 little-endian bytes to float32 in [-1, 1)."""
    if len(pcm) > MAX_CHUNK_BYTES:
        raise InvalidAudio(field, f"{len(pcm)} bytes exceeds the {MAX_CHUNK_BYTES}-byte chunk bound")
    if len(pcm) % 2:
        raise InvalidAudio(field, f"PCM16 needs an even number of bytes, got {len(pcm)}")
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(samples: np.ndarray) -> bytes:
    """Encode float audio to PCM16 little-endian, clipping to full scale."""
    clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 32767 / 32768)
    return (clipped * 32768.0).astype("<i2").tobytes()


def resample(samples: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Resample a whole clip (use :class:`StreamResampler` for streams)."""
    if from_hz == to_hz:
        return np.asarray(samples, dtype=np.float32)
    return soxr.resample(np.asarray(samples, dtype=np.float32), from_hz, to_hz).astype(np.float32)


class StreamResampler:
    """Chunk-by-chunk resampling with continuous filter state; a no-op at equal rates."""

    def __init__(self, from_hz: int, to_hz: int) -> None:
        self.from_hz = from_hz
        self.to_hz = to_hz
        self._stream = None if from_hz == to_hz else soxr.ResampleStream(from_hz, to_hz, 1, dtype="float32")

    def process(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        samples = np.asarray(samples, dtype=np.float32)
        if self._stream is None:
            return samples
        return self._stream.resample_chunk(samples, last=last)

    def flush(self) -> np.ndarray:
        """Return the samples still held in the filter (end of a stream)."""
        return self.process(np.zeros(0, dtype=np.float32), last=True)
