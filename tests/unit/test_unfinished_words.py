"""Which transcripts hold an endpoint (gateway.unfinished_words)."""

from __future__ import annotations

import pytest

from voxmesh.gateway.unfinished_words import EndpointHold, is_english, sounds_unfinished
from voxmesh.metrics import HELD_ENDPOINTS


@pytest.mark.parametrize(
    "words",
    [
        "i would like to book a",  # pocketsphinx's words for a Piper speaker stopping after "a"
        "what should i cook for dinner with",
        "how many grams of",
        "please tell me about",
        "what is the weather in london and",
        "I'd like to",
        "Can you remind my",
        "So I'm",
        "what",  # "What… time is it?"
        "I was wondering if",
        "book a table for um",
        "Well, I think that,",  # a punctuating transcriber's open clause
        "and then…",
        "Don’t forget the",  # typographic apostrophe elsewhere in the text
    ],
)
def test_words_that_leave_the_sentence_open_are_unfinished(words: str) -> None:
    assert sounds_unfinished(words)


@pytest.mark.parametrize(
    "words",
    [
        "what time is it",
        "turn the lights on",  # a particle ends phrasal verbs: kept finished
        "where are you from?",  # closed by punctuation, whatever the last word
        "I would like that",
        "tell me a joke about cats",
        "",
        "   ",
        "...?",
        "book a.",
    ],
)
def test_complete_or_wordless_transcripts_are_not_held(words: str) -> None:
    assert not sounds_unfinished(words)


def test_only_english_is_judged() -> None:
    assert is_english("en") and is_english("en-GB") and is_english("EN-us")
    assert not is_english("fr") and not is_english("eng") and not is_english("")
    hold = EndpointHold(1000)
    assert hold.should_hold("i would like a", "en-US")
    # Another language's words are never judged by the English list ("a" is a French preposition).
    assert not hold.should_hold("je vais à", "fr")
    assert not hold.should_hold("i would like a", "de")


def test_a_zero_hold_never_holds() -> None:
    assert EndpointHold(1000).should_hold("i would like to book a", "en")
    assert not EndpointHold(0).should_hold("i would like to book a", "en")


def test_a_doubtful_last_word_does_not_hold_speech_that_sounds_finished() -> None:
    """A misheard ending ("at four" heard as "what for") does not decide alone."""
    hold = EndpointHold(1000)
    overruled = HELD_ENDPOINTS.labels("overruled")._value.get()
    assert not hold.should_hold("call my sister what for", "en", 0.05, 0.95)
    assert HELD_ENDPOINTS.labels("overruled")._value.get() == overruled + 1
    # The same words hold when the transcriber is sure of them, when the speech
    # does not sound finished, or when either signal is missing.
    assert hold.should_hold("call my sister what for", "en", 0.6, 0.95)
    assert hold.should_hold("call my sister what for", "en", 0.05, 0.5)
    assert hold.should_hold("call my sister what for", "en", None, 0.95)
    assert hold.should_hold("call my sister what for", "en", 0.05, None)
    # Piper's "I'd like to book a": the transcriber gives "a" 0.14, Smart Turn 0.94; it is held.
    assert hold.should_hold("i'd like to book a", "en", 0.14, 0.94)
