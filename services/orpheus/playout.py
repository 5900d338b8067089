"""The playout clock: whether a client playing a turn from its first chunk ever starves.

:func:`tokens_to_audio` releases a chunk when its window is decoded, and the
window waits for its lookahead frames, which come at the model's pace. This
module replays that schedule on a virtual clock — the same
:class:`SnacStream` window walk, one decode at a time in order, the first
chunk held for :meth:`SnacStream.first_chunk_hold_s` — for a generation
speed and a decode cost, so the gap-free property can be checked exactly
(tests, with decode cost counted in frames) and real decode costs can be
laid on it without the noise of a shared machine's scheduler
(``bench/orpheus_pacing.py --clock virtual``).

:func:`replay_turn` strings phrases together the way the session starts
them: each phrase's generation begins with a prefill, either when the phrase
before it has released its last chunk (phrases one after another) or when
it has released its first (the next phrase prefetched while the current one
plays), and the client plays the phrases back to back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
        return max(self.gaps_s())

    def gaps_s(self) -> list[float]:
        """The silence before each chunk (0 where it came in time) for that client."""
        play_end, gaps = self.releases[0][0], []
        for released, frames in self.releases:
            gaps.append(max(0.0, released - play_end))
            play_end = max(play_end, released) + frames * FRAME_SECONDS
        return gaps


@dataclass(frozen=True)
class TurnPlayout:
    """A turn's phrases on one virtual clock, played back to back."""

    playout: Playout
    #: Index in ``playout.releases`` of each phrase's first chunk.
    phrase_starts: tuple[int, ...]

    @property
    def boundary_gaps_s(self) -> list[float]:
        """The silence before each later phrase's first chunk."""
        gaps = self.playout.gaps_s()
        return [gaps[i] for i in self.phrase_starts[1:]]


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


def replay_turn(
    new_stream: Callable[[], SnacStream],
    phrase_frames: Sequence[int],
    speed: float,
    decode_s: Callable[[int], float],
    prefill_s: float,
    prefetch: bool,
    one_generation_at_a_time: bool = False,
    hold: bool = True,
) -> TurnPlayout:
    """Release times of a turn's phrases, each generated at ``speed`` × real time after a prefill.

    Without ``prefetch`` a phrase's prompt is submitted when the phrase
    before it released its last chunk; with it, when that phrase released
    its first. Phrases under way together generate at ``speed`` each (a
    batching engine; their decodes share the batcher's batches), unless
    ``one_generation_at_a_time`` (the transformers engine with a static
    cache), where a phrase's generation waits for the one before it to end.
    """
    start = 0.0
    releases: list[tuple[float, int]] = []
    phrase_starts: list[int] = []
    first_frames = 0
    for frames in phrase_frames:
        phrase = replay(new_stream(), frames, speed, decode_s, hold)
        offset = start + prefill_s
        if not phrase_starts:
            first_frames = phrase.frames_before_first_audio
        phrase_starts.append(len(releases))
        releases.extend((offset + released, n) for released, n in phrase.releases)
        start = offset + phrase.releases[0][0] if prefetch else releases[-1][0]
        if one_generation_at_a_time:
            start = max(start, offset + frames * FRAME_SECONDS / speed)
    return TurnPlayout(Playout(tuple(releases), first_frames), tuple(phrase_starts))
