"""Generated token ids → audio chunks: the part both model engines share.

Ids go through :class:`FrameParser` (skipping stray ids inside a frame),
frames into a :class:`SnacStream`, its windows through the shared
:class:`SnacBatcher`; chunks come out as soon as each window is decoded.
While a window decodes, the model keeps generating into its own buffer, so
the next window usually takes several frames at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

import numpy as np
from prometheus_client import Counter

from voxmesh import logs
from voxmesh.services.orpheus.orpheus_tokens import FrameParser
from voxmesh.services.orpheus.settings import OrpheusSettings
from voxmesh.services.orpheus.snac_batcher import SnacBatcher
from voxmesh.services.orpheus.snac_decoder import SnacStream

log = logging.getLogger(__name__)

DROPPED_AUDIO_TOKENS = Counter(
    "voxmesh_orpheus_dropped_tokens_total",
    "Generated tokens not decoded as audio (out of frame order, not audio, or an unfinished last frame)",
)


@dataclass(frozen=True)
class StreamParams:
    """How a phrase's frames are windowed (see :class:`SnacStream`)."""

    left_frames: int = 3
    lookahead_frames: int = 1
    crossfade_samples: int = 128
    first_lookahead_frames: int = 1
    max_emit_frames: int = 8
    #: Hold a phrase's first chunk for the later windows' extra decode time
    #: (off only to measure what that hold buys: bench/orpheus_pacing.py).
    hold_first_chunk: bool = True

    def new_stream(self) -> SnacStream:
        return SnacStream(
            left_frames=self.left_frames,
            lookahead_frames=self.lookahead_frames,
            crossfade_samples=self.crossfade_samples,
            first_lookahead_frames=self.first_lookahead_frames,
            max_emit_frames=self.max_emit_frames,
        )


def stream_params(settings: OrpheusSettings) -> StreamParams:
    return StreamParams(
        left_frames=settings.snac_left_frames,
        lookahead_frames=settings.snac_lookahead_frames,
        crossfade_samples=settings.snac_crossfade_samples,
        first_lookahead_frames=settings.snac_first_lookahead_frames,
        max_emit_frames=settings.snac_max_emit_frames,
    )


async def tokens_to_audio(
    token_batches: AsyncGenerator[list[int], None], batcher: SnacBatcher, params: StreamParams
) -> AsyncIterator[np.ndarray]:
    """Yield float32 24 kHz chunks (whole frames) for a phrase's generated ids."""
    parser = FrameParser()
    stream = params.new_stream()
    # aclosing: when the consumer stops early (a cancelled turn), the model's
    # generator is closed now, which aborts its request, not whenever GC runs.
    async with contextlib.aclosing(token_batches) as batches:
        async for ids in batches:
            stream.add(parser.push(ids))
            while (window := stream.next_window()) is not None:
                first = stream.emitted == 0
                started = time.perf_counter()
                chunk = stream.accept(window, await batcher.decode(window))
                if first and params.hold_first_chunk:
                    # The playout clock starts with this chunk: hold it just
                    # long enough that the next (longer) window is decoded
                    # before it has played (see SnacStream.first_chunk_hold_s).
                    # Meanwhile the engine keeps generating into its buffer.
                    decoder = batcher.decoder
                    first_s = decoder.decode_seconds(len(window.frames)) or time.perf_counter() - started
                    later_s = decoder.decode_seconds(stream.later_window_frames)
                    await asyncio.sleep(stream.first_chunk_hold_s(first_s, later_s))
                yield chunk
            if parser.ended:
                break
    parser.finish()
    while (window := stream.next_window(final=True)) is not None:
        yield stream.accept(window, await batcher.decode(window))
    if parser.dropped_tokens:
        DROPPED_AUDIO_TOKENS.inc(parser.dropped_tokens)
        log.warning(
            "tokens out of frame order were dropped, not decoded",
            extra=logs.fields(
                dropped_tokens=parser.dropped_tokens,
                skipped_ids=parser.skipped_ids,
                lost_frames=parser.lost_frames,
                frames=len(stream.frames),
            ),
        )
