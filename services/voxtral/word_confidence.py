"""The transcriber's confidence in a transcript's last word, from its tokens' probabilities.

The gateway weighs it against the end-of-turn model when the words end
unfinished (gateway.unfinished_words): a doubtful last word does not hold a
turn the model is sure of. Voxtral transcribes greedily, so each token was
picked at the probability the model gave it; a word is as sure as its tokens
together (their product), the analogue of the word posterior pocketsphinx
gives the CPU stand-in.

The last word is found on the text: trailing punctuation and spaces are not
words, and a word starts at the piece that begins with a space (Tekken, like
most BPE vocabularies, glues the space to the front of a word's first token).
"""

from __future__ import annotations

from collections.abc import Sequence


def last_word_confidence(pieces: Sequence[tuple[str, float]]) -> float | None:
    """P(last word) from (text, probability) pieces in the order they were sampled; None: no word."""
    confidence = 1.0
    in_word = False
    for text, probability in reversed(pieces):
        if not in_word:
            core = _without_trailing_marks(text)
            if not any(ch.isalnum() for ch in core):
                continue  # punctuation or spaces after the last word
            in_word = True
            confidence *= probability
            if any(ch.isspace() for ch in core):
                break  # the word starts inside this piece
            continue
        if not text.strip() or text[-1].isspace():
            break  # the word starts right after this piece
        confidence *= probability
        if any(ch.isspace() for ch in text):
            break
    return confidence if in_word else None


def _without_trailing_marks(text: str) -> str:
    end = len(text)
    while end and not text[end - 1].isalnum():
        end -= 1
    return text[:end]


class HeldProbability:
    """The probability of the tokens behind the next text piece: a piece can hold
    several tokens (a character split across byte tokens is held back until whole).
    """

    def __init__(self) -> None:
        self._product: float | None = 1.0
        self._steps = 0

    def add(self, probabilities: Sequence[float] | None) -> None:
        """One step's tokens' probabilities; None: not known (then neither is the piece's)."""
        self._steps += 1
        if probabilities is None or self._product is None:
            self._product = None
            return
        for probability in probabilities:
            self._product *= probability

    def take(self) -> float | None:
        """The held tokens' probability together (None: not known, or none held), and start afresh."""
        product = self._product if self._steps else None
        self._product, self._steps = 1.0, 0
        return product
