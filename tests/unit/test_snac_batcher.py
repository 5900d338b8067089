"""The shared SNAC batcher serves a phrase's first window ahead of later windows."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from voxmesh.services.orpheus.orpheus_tokens import SAMPLES_PER_FRAME, Frame
from voxmesh.services.orpheus.random_checkpoint import TINY_SNAC_CONFIG, random_snac
from voxmesh.services.orpheus.snac_batcher import SnacBatcher
from voxmesh.services.orpheus.snac_decoder import DecodeWindow, SnacDecoder


@pytest.fixture(scope="module")
def decoder() -> SnacDecoder:
    return SnacDecoder(random_snac(TINY_SNAC_CONFIG, seed=1), seed=0)


def frames(n: int, seed: int) -> tuple[Frame, ...]:
    rng = np.random.default_rng(seed)
    return tuple(tuple(int(c) for c in rng.integers(0, 4096, 7)) for _ in range(n))  # type: ignore[misc]


def later_window(seed: int) -> DecodeWindow:
    """A window in the middle of a phrase: 3 frames of left context, 1 emitted, 2 of lookahead."""
    return DecodeWindow(frames(6, seed), start_frame=4, emit_from=7, emit_to=8)


def first_window(seed: int) -> DecodeWindow:
    return DecodeWindow(frames(2, seed), start_frame=0, emit_from=0, emit_to=1)


@pytest.mark.parametrize("priority", [True, False])
async def test_a_first_window_overtakes_later_windows_waiting(decoder: SnacDecoder, priority: bool) -> None:
    batcher = SnacBatcher(decoder, max_batch=1, max_wait_s=0, first_window_priority=priority)
    batcher.start()
    done: list[str] = []

    async def decode(name: str, window: DecodeWindow) -> np.ndarray:
        audio = await batcher.decode(window)
        done.append(name)
        return audio

    try:
        # A long window keeps the decoder busy while the others queue behind it.
        busy = asyncio.create_task(decode("busy", DecodeWindow(frames(40, 0), 0, 0, 38)))
        await asyncio.sleep(0)
        waiting = [
            asyncio.create_task(decode(name, window))
            for name, window in [
                ("later-1", later_window(1)),
                ("later-2", later_window(2)),
                ("first", first_window(3)),
            ]
        ]
        audio = await asyncio.gather(busy, *waiting)
    finally:
        await batcher.close()
    assert done == (
        ["busy", "first", "later-1", "later-2"] if priority else ["busy", "later-1", "later-2", "first"]
    )
    # Served out of order, each caller still gets its own window's audio.
    assert [len(a) for a in audio] == [
        40 * SAMPLES_PER_FRAME,
        *[6 * SAMPLES_PER_FRAME] * 2,
        2 * SAMPLES_PER_FRAME,
    ]
    np.testing.assert_array_equal(audio[3], decoder.decode([frames(2, 3)], [0])[0])


async def test_in_one_batch_the_first_window_is_decoded_first(decoder: SnacDecoder) -> None:
    """A first window that joins a batch after a later one is still decoded (and answered) first."""
    batcher = SnacBatcher(decoder, max_batch=2, max_wait_s=5)
    batcher.start()
    done: list[str] = []

    async def decode(name: str, window: DecodeWindow) -> None:
        await batcher.decode(window)
        done.append(name)

    try:
        later = asyncio.create_task(decode("later", later_window(1)))
        await asyncio.sleep(0.01)  # the worker has taken it and waits for a second window
        await asyncio.gather(later, decode("first", first_window(2)))
    finally:
        await batcher.close()
    # One batch, two lengths: two decodes, the first window's before the later one's.
    assert done == ["first", "later"] and batcher.largest_batch == 1 and batcher.batches == 2
