"""SNAC 24 kHz decoding: a batched window decoder and the per-phrase streaming state.

SNAC's decoder is a stack of convolutions (no attention in the 24 kHz model),
so a sample depends only on latents within its receptive field: measured on
the real architecture, ±4 739 samples (2.3 frames) around it. Decoding a
window of frames with at least that much context on both sides therefore
gives exactly the samples a one-shot decode of the whole phrase gives —
provided both see the same noise. SNAC adds ``randn`` noise in every decoder
block (``noise=True``); :class:`SnacDecoder` draws it from fixed tables
indexed by absolute position instead, so the noise at a sample is the same
in every window that covers it, decoding is deterministic (tests compare
bytes), and the statistics are the same white Gaussian noise SNAC adds.

:class:`SnacStream` decides which window to decode next for one phrase:

- left context ``left_frames`` (default 3 ≥ 2.3: exact);
- right context: a frame is played once ``lookahead_frames`` more exist.
  Measured against a one-shot decode (real-size random SNAC), the RMS error
  is 2-8 % of the signal with no lookahead, 0.8 % with 1 frame (-42 dB),
  0.007 % with 2 and float rounding with 3. The first chunk of a phrase uses
  ``first_lookahead_frames``;
- where windows meet, the new chunk starts from the previous window's own
  continuation of the waveform and crossfades into the new window over
  ``crossfade_samples`` (default 128, 5 ms), so a seam never steps even when
  the two estimates differ;
- every frame is emitted exactly once and chunks are whole frames (2048
  samples); at end of speech the remaining frames are decoded with what
  context there is, exactly as a one-shot decode sees them.

Why both lookaheads default to 1 (a playout clock). Frames are generated at
``s`` × real time, so frame ``i`` is complete at ``(i + 1) / s`` frame
durations; the first chunk (frame 0) is released once frame ``L1`` exists, at
``(L1 + 1) / s``, and the client then plays frame ``k`` at ``(L1 + 1) / s + k``.
Frame ``k`` can be emitted once frame ``k + L`` exists, at ``(k + L + 1) / s``.
Playback never starves iff ``(k + L + 1) / s <= (L1 + 1) / s + k`` for every
``k >= 1``, i.e. ``L - L1 <= k (s - 1)``: at ``k = 1``, ``s >= 1 + L - L1``.
With ``L <= L1`` that holds at every speed ≥ 1.0×; the old 1-then-2 needed
2.0× (measured: an 85 ms gap at 1.0×, 57 ms at 1.2×). So ``L`` may not exceed
``L1`` (refused at start-up), and ``L1 = L = 1`` gives first audio after 14
ids at 0.8 % error per chunk; ``L1 = L = 2`` costs one frame (85 ms) more
before first audio for -80 dB seams; ``L1 > L`` buys a playout buffer of
``L1 - L`` frames against decode jitter.

Decode time enters too: a later window carries ``left_frames`` of context
the first one lacks, so at 1.0× it may finish after the first chunk has
played by the difference in decode time. :meth:`SnacStream.first_chunk_hold_s`
holds the first chunk back by that difference, as :class:`SnacDecoder` has
measured it for windows of both lengths (before it has seen a later window,
the first window's own decode time scaled by length: more than needed).
``bench/orpheus_pacing.py`` measures all of this.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from voxmesh.services.orpheus.orpheus_tokens import (
    SAMPLES_PER_FRAME,
    SNAC_SAMPLE_RATE_HZ,
    Frame,
    codebooks,
)

#: The 24 kHz model's configuration (hubertsiuzdak/snac_24khz, 19.8 M parameters).
SNAC_24KHZ_CONFIG: dict[str, object] = {
    "sampling_rate": 24_000,
    "encoder_dim": 48,
    "encoder_rates": [2, 4, 8, 8],
    "decoder_dim": 1024,
    "decoder_rates": [8, 8, 4, 2],
    "attn_window_size": None,
    "codebook_size": 4096,
    "codebook_dim": 8,
    "vq_strides": [4, 2, 1],
    "noise": True,
    "depthwise": True,
}
#: Playing time of one frame (85.3 ms).
FRAME_SECONDS = SAMPLES_PER_FRAME / SNAC_SAMPLE_RATE_HZ
#: Latent steps per frame (the coarsest codebook's stride).
LATENTS_PER_FRAME = 4
#: Positional noise repeats after this many latent steps (2048 × 512 samples ≈ 44 s).
NOISE_PERIOD_LATENTS = 2_048


def load_snac(model: str, device: str | torch.device = "cpu") -> Any:
    """SNAC from a local directory (``config.json`` + ``pytorch_model.bin``) or a hub id."""
    from snac import SNAC

    if not os.path.isdir(model) and os.environ.get("HF_HUB_OFFLINE"):
        raise FileNotFoundError(f"SNAC model {model!r} is not a local directory and HF_HUB_OFFLINE is set")
    snac = SNAC.from_pretrained(model).eval()
    return snac.to(device)


class SnacDecoder:
    """Decodes batches of frame windows with positional noise; thread-safe for one caller."""

    def __init__(self, snac: Any, seed: int = 0) -> None:
        from snac.layers import DecoderBlock, NoiseBlock

        self.snac = snac.eval()
        self.device = next(snac.parameters()).device
        self.dtype = next(snac.parameters()).dtype
        self.hop = int(np.prod(snac.decoder_rates))
        if int(np.prod(snac.encoder_rates)) * LATENTS_PER_FRAME != SAMPLES_PER_FRAME:
            raise ValueError("not a 24 kHz SNAC: a frame must be 4 latents of 512 samples")
        # Each noise block runs at latent rate × the upsampling before it.
        self._noise: dict[int, tuple[int, torch.Tensor]] = {}
        #: Window length → smoothed seconds per decode call (written by the decoding thread).
        self._seconds: dict[int, float] = {}
        generator = torch.Generator().manual_seed(seed)
        upsampling = 1
        for layer in snac.decoder.model:
            if isinstance(layer, DecoderBlock):
                for sub in layer.block:
                    if hasattr(sub, "stride"):
                        upsampling *= int(sub.stride[0])
                    if isinstance(sub, NoiseBlock):
                        table = torch.randn(NOISE_PERIOD_LATENTS * upsampling, generator=generator)
                        self._noise[id(sub)] = (upsampling, table.to(self.device, self.dtype))

    def decode_seconds(self, frames: int) -> float | None:
        """Recent wall time of one decode call (a batch) of windows this long; None if never seen."""
        return self._seconds.get(frames)

    def decode(self, windows: Sequence[Sequence[Frame]], start_frames: Sequence[int]) -> np.ndarray:
        """Audio of equally long windows: float32 ``(batch, frames × 2048)``.

        ``start_frames`` are the windows' positions in their phrases (for the noise).
        """
        started = time.perf_counter()
        audio = self._decode(windows, start_frames)
        elapsed = time.perf_counter() - started
        n = len(windows[0])
        # A moving average: batch sizes and load vary; the first chunk's hold
        # (SnacStream.first_chunk_hold_s) wants the typical cost, not the last.
        previous = self._seconds.get(n)
        self._seconds[n] = elapsed if previous is None else 0.8 * previous + 0.2 * elapsed
        return audio

    @torch.inference_mode()
    def _decode(self, windows: Sequence[Sequence[Frame]], start_frames: Sequence[int]) -> np.ndarray:
        from snac.layers import DecoderBlock, NoiseBlock

        n = {len(w) for w in windows}
        if len(n) != 1:
            raise ValueError("windows of one batch must have the same number of frames")
        books = [codebooks(list(w)) for w in windows]
        codes = [torch.tensor([b[i] for b in books], device=self.device) for i in range(3)]
        x = self.snac.quantizer.from_codes(codes).to(self.dtype)
        offsets = torch.tensor(start_frames, device=self.device) * LATENTS_PER_FRAME
        for layer in self.snac.decoder.model:
            if isinstance(layer, DecoderBlock):
                for sub in layer.block:
                    x = self._noisy(sub, x, offsets) if isinstance(sub, NoiseBlock) else sub(x)
            else:
                x = layer(x)
        return x[:, 0, :].float().cpu().numpy()

    def _noisy(self, block: Any, x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        upsampling, table = self._noise[id(block)]
        positions = offsets[:, None] * upsampling + torch.arange(x.shape[-1], device=x.device)[None, :]
        noise = table[positions % table.numel()][:, None, :]
        return x + noise * block.linear(x)


@dataclass(frozen=True)
class DecodeWindow:
    """Frames to decode for one phrase and which of their samples to emit."""

    frames: tuple[Frame, ...]
    #: Index of ``frames[0]`` in the phrase.
    start_frame: int
    #: Frames ``[emit_from, emit_to)`` (phrase indices) are emitted from this window.
    emit_from: int
    emit_to: int


@dataclass
class SnacStream:
    """The streaming decode state of one phrase: frames in, windows to decode, chunks out."""

    left_frames: int = 3
    lookahead_frames: int = 1
    crossfade_samples: int = 128
    first_lookahead_frames: int = 1
    #: Cap on frames emitted by one window (bounds a decode's cost after a stall).
    max_emit_frames: int = 8
    #: Every frame of the phrase so far (≤ ~200 of them: the phrase token cap).
    frames: list[Frame] = field(default_factory=list)
    #: Frames already emitted.
    emitted: int = 0
    _tail: np.ndarray | None = None

    def __post_init__(self) -> None:
        if min(self.left_frames, self.lookahead_frames, self.first_lookahead_frames) < 0:
            raise ValueError("context frames must be >= 0")
        if self.max_emit_frames < 1:
            raise ValueError("max_emit_frames must be >= 1")
        if (
            self.crossfade_samples
            > min(self.lookahead_frames, self.first_lookahead_frames) * SAMPLES_PER_FRAME
        ):
            raise ValueError("crossfade_samples cannot exceed the lookahead")

    @property
    def first_window_frames(self) -> int:
        return 1 + self.first_lookahead_frames

    @property
    def later_window_frames(self) -> int:
        """Frames in a window that emits one frame mid-phrase (the common case at 1.0×)."""
        return self.left_frames + 1 + self.lookahead_frames

    def first_chunk_hold_s(self, first_decode_s: float, later_decode_s: float | None = None) -> float:
        """How long to hold a phrase's first chunk so that playout never waits for a later one.

        Later windows are longer (left context) and cost more; at 1.0× the
        second chunk's decode starts as the first chunk starts playing (less
        any extra first lookahead, a buffer already), so the first chunk waits
        for the difference in decode time. ``later_decode_s`` is what a
        :attr:`later_window_frames` window has been measured to cost; unknown
        (None), the first window's cost is scaled by length, which
        overestimates where a fixed cost dominates. Capped at one frame: a
        decoder slower than that is slower than real time, and no hold helps.
        """
        first, later = self.first_window_frames, self.later_window_frames
        if later_decode_s is None:
            later_decode_s = first_decode_s * later / first
        buffered_s = (self.first_lookahead_frames - self.lookahead_frames) * FRAME_SECONDS
        hold = later_decode_s - first_decode_s - buffered_s
        return min(max(hold, 0.0), FRAME_SECONDS)

    @property
    def pending_frames(self) -> int:
        return len(self.frames) - self.emitted

    def add(self, frames: Sequence[Frame]) -> None:
        self.frames.extend(frames)

    def next_window(self, final: bool = False) -> DecodeWindow | None:
        """The next window to decode, or None until enough frames are in (or all are out)."""
        lookahead = self.lookahead_frames if self.emitted else self.first_lookahead_frames
        available = len(self.frames) if final else len(self.frames) - lookahead
        emit_to = min(available, self.emitted + self.max_emit_frames)
        if emit_to <= self.emitted:
            return None
        start = max(0, self.emitted - self.left_frames)
        end = min(len(self.frames), emit_to + lookahead)
        return DecodeWindow(tuple(self.frames[start:end]), start, self.emitted, emit_to)

    def accept(self, window: DecodeWindow, audio: np.ndarray) -> np.ndarray:
        """The chunk to play from a decoded window: its emitted frames, seam crossfaded."""
        if window.emit_from != self.emitted:
            raise ValueError("windows must be accepted in order")
        a = (window.emit_from - window.start_frame) * SAMPLES_PER_FRAME
        b = (window.emit_to - window.start_frame) * SAMPLES_PER_FRAME
        chunk = np.array(audio[a:b], dtype=np.float32)
        if self._tail is not None and len(self._tail):
            n = min(len(self._tail), len(chunk))
            # Equal-gain raised cosine: the two estimates of these samples are
            # nearly the same signal (so gains sum to 1, not powers), and the
            # curve has no slope jump at either end.
            fade_in = 0.5 - 0.5 * np.cos(np.linspace(0.0, math.pi, n, dtype=np.float32))
            chunk[:n] = self._tail[:n] * (1.0 - fade_in) + chunk[:n] * fade_in
        self._tail = np.array(audio[b : b + self.crossfade_samples], dtype=np.float32)
        self.emitted = window.emit_to
        return chunk
