"""The last word's confidence from a transcript's sampled pieces (services.voxtral.word_confidence)."""

from __future__ import annotations

import math

import pytest

from voxmesh.services.voxtral.word_confidence import HeldProbability, last_word_confidence


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        # One token per word: the last word's own probability.
        ([("What", 0.9), (" time", 0.8), (" is", 0.95), (" it", 0.5)], 0.5),
        # Trailing punctuation is not a word.
        ([("Book", 0.9), (" a", 0.3), (" table", 0.6), (".", 0.99)], 0.6),
        ([("Book", 0.9), (" a", 0.3), ("?", 0.7), ("\n", 0.5)], 0.3),
        # A word of several tokens: all of them together.
        ([("I", 0.9), (" like", 0.8), (" bon", 0.5), ("jour", 0.4)], 0.2),
        # Punctuation glued to the word's last token still counts that token.
        ([("It", 0.9), (" is", 0.8), (" mid", 0.5), ("night.", 0.5)], 0.25),
        # A piece that holds the end of one word and the start of the next (held bytes).
        ([("the", 0.9), ("m bo", 0.5), ("ok", 0.5)], 0.25),
        # A space token before the word is not part of it.
        ([("a", 0.9), (" ", 0.1), ("word", 0.7)], 0.7),
        # A single word.
        ([("Yes", 0.6), ("!", 0.9)], 0.6),
        # An apostrophe inside a word is part of it.
        ([("I", 0.9), (" don", 0.5), ("'t", 0.5)], 0.25),
    ],
)
def test_the_last_word_is_as_sure_as_its_tokens_together(
    pieces: list[tuple[str, float]], expected: float
) -> None:
    got = last_word_confidence(pieces)
    assert got is not None and math.isclose(got, expected), got


@pytest.mark.parametrize("pieces", [[], [(".", 0.9)], [(" ", 0.5), ("…", 0.5)]])
def test_no_word_no_confidence(pieces: list[tuple[str, float]]) -> None:
    assert last_word_confidence(pieces) is None


def test_a_piece_held_over_several_tokens_is_as_sure_as_all_of_them() -> None:
    held = HeldProbability()
    assert held.take() is None  # no tokens yet
    held.add([0.5])
    held.add([0.5, 0.8])  # a step can bring more than one token
    assert held.take() == pytest.approx(0.2)
    assert held.take() is None  # taken: the next piece starts afresh


def test_a_token_of_unknown_probability_leaves_the_piece_unknown() -> None:
    held = HeldProbability()
    held.add([0.9])
    held.add(None)
    held.add([0.9])
    assert held.take() is None
    held.add([0.9])
    assert held.take() == pytest.approx(0.9)
