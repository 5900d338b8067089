"""G.711 µ-law and A-law ⇄ int16 samples, vectorised with numpy (the phone and Realtime edges' codec).

``audioop`` left the standard library in Python 3.13, so the ITU-T G.711
segment arithmetic is done here; it is bit-exact with ``audioop`` on every
16-bit sample and every code (tests/unit/test_g711.py checks it where
``audioop`` or ``audioop-lts`` is importable). G.711 is 8 kHz: one byte per sample.
"""

from __future__ import annotations

import numpy as np

G711_RATE_HZ = 8_000
#: µ-law of silence (0) — what a phone sends between words.
ULAW_SILENCE = 0xFF


_ULAW_BIAS = 0x84


def ulaw_encode(samples: np.ndarray) -> np.ndarray:
    """int16 → G.711 µ-law bytes (on 14-bit magnitudes, as the reference coder does)."""
    x = samples.astype(np.int32) >> 2
    mask = np.where(x < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(x), 8159) + 33
    # Segment = position of the highest set bit above bit 5 (0..7).
    segment = np.maximum(np.floor(np.log2(magnitude)).astype(np.int32) - 5, 0)
    # Past the last segment the code saturates at 0x7F (full scale).
    code = np.where(segment > 7, 0x7F, (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F))
    return (code ^ mask).astype(np.uint8)


def ulaw_decode(codes: np.ndarray) -> np.ndarray:
    """G.711 µ-law bytes → int16."""
    u = ~codes.astype(np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def alaw_encode(samples: np.ndarray) -> np.ndarray:
    """int16 → G.711 A-law bytes."""
    x = samples.astype(np.int32) >> 3  # A-law works on 13-bit magnitudes
    sign = np.where(x >= 0, 0x80, 0)
    magnitude = np.minimum(np.where(x < 0, -x - 1, x), 0x0FFF)
    exponent = np.where(magnitude < 32, 0, np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int32) - 4)
    exponent = np.clip(exponent, 0, 7)
    mantissa = np.where(exponent == 0, magnitude >> 1, magnitude >> exponent) & 0x0F
    return ((sign | (exponent << 4) | mantissa) ^ 0x55).astype(np.uint8)


def alaw_decode(codes: np.ndarray) -> np.ndarray:
    """G.711 A-law bytes → int16."""
    a = codes.astype(np.int32) ^ 0x55
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.int16)
