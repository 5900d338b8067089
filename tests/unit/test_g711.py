"""voxmesh.g711 against the reference coder: audioop (3.11/3.12's standard library, audioop-lts on 3.13)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from voxmesh.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    audioop = pytest.importorskip("audioop")

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = np.arange(256, dtype=np.uint8)


@pytest.mark.parametrize(("ours", "reference"), [(ulaw_encode, "lin2ulaw"), (alaw_encode, "lin2alaw")])
def test_encode_is_bit_exact_with_audioop_on_every_sample(ours, reference) -> None:  # type: ignore[no-untyped-def]
    expected = np.frombuffer(getattr(audioop, reference)(ALL_SAMPLES.tobytes(), 2), np.uint8)
    assert np.array_equal(ours(ALL_SAMPLES), expected)


@pytest.mark.parametrize(("ours", "reference"), [(ulaw_decode, "ulaw2lin"), (alaw_decode, "alaw2lin")])
def test_decode_is_bit_exact_with_audioop_on_every_code(ours, reference) -> None:  # type: ignore[no-untyped-def]
    expected = np.frombuffer(getattr(audioop, reference)(ALL_CODES.tobytes(), 2), np.int16)
    assert np.array_equal(ours(ALL_CODES), expected)
