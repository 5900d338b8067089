"""The playout clock: whether a client playing a phrase from its first chunk ever starves.

:func:`tokens_to_audio` releases a chunk when its window is decoded, and the
window waits for its lookahead frames, which come at the model's pace. This
module replays that schedule on a virtual clock — the same
:class:`SnacStream` window walk, one decode at a time in order, the first
chunk held for :meth:`SnacStream.first_chunk_hold_s` — for a generation
speed and a decode cost, so the gap-free property can be checked exactly
(tests, with decode cost counted in frames) and real decode costs can be
laid on it without the noise of a shared machine's scheduler
(``bench/orpheus_pacing.py --clock virtual``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from voxmesh.services.orpheus.orpheus_tokens import SAMPLES_PER_FRAME
from voxmesh.services.orpheus.snac_decoder import FRAME_SECONDS, SnacStream


@dataclass(frozen=True)
class Playout:
    """One phrase on the virtual clock; times in seconds from the first id's generation start."""

    #: (release time, frames) of every chunk, in order.
    releases: tuple[tuple[float, int], ...]
    #: Frames complete when the first chunk was released.
    frames_before_first_audio: int

    @property
    def first_audio_s(self) -> float:
        return self.releases[0][0]

    @property
    def largest_gap_s(self) -> float:
        """Longest silence of a client that starts at the first chunk and plays each right after the last."""
        play_end, gap = self.releases[0][0], 0.0
        for released, frames in self.releases:
            gap = max(gap, released - play_end)
            play_end = max(play_end, released) + frames * FRAME_SECONDS
        return gap


def replay(
    stream: SnacStream,
    frames: int,
    speed: float,
    decode_s: Callable[[int], float],
    hold: bool = True,
) -> Playout:
    """Release times of a ``frames``-long phrase generated at ``speed`` × real time.

    Frame ``i`` is complete at ``(i + 1) × 85.3 ms / speed``; end of speech
    comes with the last frame; ``decode_s(n)`` is what a window of ``n``
    frames costs, and the hold knows it as the decoder would after warm-up.
    Frame codes are placeholders (the walk depends only on counts).
    """
    frame_s = FRAME_SECONDS / speed
    now, arrived, first_frames = 0.0, 0, 0
    releases: list[tuple[float, int]] = []
    while stream.emitted < frames:
        while arrived < frames and (arrived + 1) * frame_s <= now + 1e-12:
            stream.add([(arrived % 4096,) * 7])  # type: ignore[list-item]
            arrived += 1
        window = stream.next_window(final=arrived == frames)
        if window is None:
            now = (arrived + 1) * frame_s
            continue
        first = stream.emitted == 0
        cost = decode_s(len(window.frames))
        now += cost
        stream.accept(window, np.zeros(len(window.frames) * SAMPLES_PER_FRAME, np.float32))
        if first:
            first_frames = arrived
            if hold:
                now += stream.first_chunk_hold_s(cost, decode_s(stream.later_window_frames))
        releases.append((now, window.emit_to - window.emit_from))
    return Playout(tuple(releases), first_frames)
