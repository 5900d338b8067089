"""Bounds of a session's end-of-turn timing (SessionConfig.turn_detection), shared by every hop.

The gateway refuses a value outside them (INVALID_ARGUMENT naming the field);
the Realtime edge clamps into them instead, because OpenAI clients send these
by default and must never get an ``error`` for it. They match what the vad
service accepts in its DetectConfig (hangover_ms, pre_roll_ms).
"""

from __future__ import annotations

#: Silence before a turn is called over (OpenAI's silence_duration_ms), in ms.
SILENCE_DURATION_RANGE_MS = (100, 5_000)
#: Audio kept before the onset (OpenAI's prefix_padding_ms), in ms; 0 on the wire means the default.
PREFIX_PADDING_RANGE_MS = (1, 2_000)


def clamp(value: int, bounds: tuple[int, int]) -> int:
    low, high = bounds
    return min(high, max(low, value))
