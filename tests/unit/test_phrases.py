"""The phrase splitter: where reply text is cut into speakable phrases."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxmesh.services.orpheus.orpheus_tokens import (
    SLOW_SPEECH_MARGIN,
    SPOKEN_CHARS_PER_SECOND,
    TOKENS_PER_SECOND,
    phrase_token_budget,
)
from voxmesh.services.orpheus.phrases import MARKUP_PATTERN, PhraseSplitter, emotive_tags_only
from voxmesh.services.orpheus.settings import OrpheusSettings
from voxmesh.services.orpheus.voices import EMOTIVE_TAGS


def split(text: str, **kw: int) -> list[str]:
    splitter = PhraseSplitter(**kw)
    return splitter.feed(text) + splitter.flush()


def split_in_pieces(text: str, cuts: list[int], **kw: int) -> list[str]:
    splitter = PhraseSplitter(**kw)
    out: list[str] = []
    start = 0
    for cut in sorted(set(cuts)):
        out += splitter.feed(text[start:cut])
        start = cut
    out += splitter.feed(text[start:])
    return out + splitter.flush()


def test_sentences() -> None:
    assert split("Hello there! How are you? I am fine. Good…  Bye") == [
        "Hello there!",
        "How are you?",
        "I am fine.",
        "Good…",
        "Bye",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Dr. Smith and Mr. Jones met Mrs. Brown at St. Mary's.",
        "Pi is about 3.14159 and e is 2.718.",
        "Use e.g. a hammer or i.e. something heavy.",
        "They moved to the U.S. in 1999 at 5 p.m. sharp.",
        "J. R. R. Tolkien wrote it.",
        "Apples, pears, etc. are fruit.",
        "Call No. 5 today.",
        "The file is example.com.au and it is fine.",
    ],
)
def test_abbreviations_decimals_and_initials_do_not_end_a_sentence(text: str) -> None:
    assert split(text) == [text]


def test_abbreviation_before_a_capital_ends_the_sentence() -> None:
    assert split("We sell apples, pears, etc. Then we close. I said no. Then I left.") == [
        "We sell apples, pears, etc.",
        "Then we close.",
        "I said no.",
        "Then I left.",
    ]


def test_so_did_i_is_a_sentence_not_an_initial() -> None:
    assert split("So did I. Then it rained.") == ["So did I.", "Then it rained."]


def test_quotes_and_brackets_stay_with_their_sentence() -> None:
    assert split('He said "Stop." Then (quietly.) she left!') == [
        'He said "Stop."',
        "Then (quietly.)",
        "she left!",
    ]


def test_first_phrase_is_cut_at_a_comma_sooner_than_later_ones() -> None:
    text = "Well, that is a good question, and the answer is long, so bear with me, please, thanks."
    phrases = split(text, first_clause_chars=20, clause_chars=40)
    assert phrases == [
        "Well, that is a good question,",
        "and the answer is long, so bear with me,",
        "please, thanks.",
    ]


def test_no_clause_cut_inside_numbers_or_times() -> None:
    text = "It costs 3,000 dollars at 10:30 today and that is the price we agreed on yesterday."
    assert split(text, first_clause_chars=5) == [text]


def test_long_text_without_punctuation_is_cut_at_spaces_within_the_limit() -> None:
    words = [f"word{n}" for n in range(100)]
    text = " ".join(words)
    phrases = split(text, max_chars=50)
    assert all(len(p) <= 50 for p in phrases)
    assert " ".join(phrases) == text
    assert [w for p in phrases for w in p.split()] == words


def test_a_word_longer_than_the_limit_is_never_cut() -> None:
    giant = "x" * 40
    assert split(f"a {giant} b", max_chars=16) == ["a", giant, "b"]


def test_line_breaks_end_phrases() -> None:
    assert split("First item\nSecond item\n\nThird") == ["First item", "Second item", "Third"]


def test_tags_stay_intact_and_tag_only_pieces_join_the_next_phrase() -> None:
    text = "That is funny <laugh>. <sigh> Well. Okay <chuckle> fine. Bye. <yawn>"
    assert split(text) == ["That is funny <laugh>.", "<sigh> Well.", "Okay <chuckle> fine.", "Bye.", "<yawn>"]


def test_only_the_eight_emotive_tags_stay_in_a_phrase() -> None:
    text = "Well <whisper> hello <LAUGH> there. <break> <pause> <Sigh> Bye <em>now</em>."
    # Before: "<whisper>", "<break>", "<pause>" went to the model verbatim.
    assert split(text) == ["Well hello <laugh> there.", "<sigh> Bye now."]


def test_a_piece_of_unknown_tags_alone_is_not_a_phrase() -> None:
    assert split("Hi. <break> <pause>. Bye.") == ["Hi.", "Bye."]
    assert split("<music>") == []


@pytest.mark.parametrize("tag", EMOTIVE_TAGS)
def test_each_emotive_tag_is_kept(tag: str) -> None:
    assert emotive_tags_only(f"oh <{tag}> no") == f"oh <{tag}> no"
    assert emotive_tags_only(f"oh <{tag.upper()}> no") == f"oh <{tag}> no"


def test_ssml_and_html_markup_is_dropped() -> None:
    text = "Wait <break time=\"1s\"/> for <prosody rate='slow'>it</prosody><br/> <laugh/>"
    assert emotive_tags_only(text) == "Wait for it"


def test_text_that_only_looks_like_markup_is_left_alone() -> None:
    assert emotive_tags_only("a < b and c > d, <3") == "a < b and c > d, <3"
    assert emotive_tags_only("if x <y and z> w") == "if x <y and z> w"


def test_only_punctuation_is_not_a_phrase() -> None:
    assert split("... !!! ?") == []
    assert split("") == []


def test_nothing_is_cut_until_the_next_character_is_known() -> None:
    splitter = PhraseSplitter()
    assert splitter.feed("It costs 3.") == []  # maybe 3.14
    assert splitter.feed("14 now. And") == ["It costs 3.14 now."]
    assert splitter.feed(" Dr.") == []
    assert splitter.feed(" Who") == []
    assert splitter.flush() == ["And Dr. Who"]


def test_first_phrase_arrives_before_the_text_ends() -> None:
    splitter = PhraseSplitter()
    assert splitter.feed("Sure. Let me") == ["Sure."]
    assert splitter.pending == "Let me"


SAMPLES = (
    "Hello there, this is Dr. Smith. It costs $3.14, e.g. in the U.S. <laugh> Okay? Yes!\nNext line",
    "Well, I think that, on balance, the answer is 42. But, as always: it depends; see No. 7 etc. Fine.",
    " ".join(["lorem ipsum dolor sit amet"] * 20) + ". The end.",
)


@settings(max_examples=200, deadline=None)
@given(sample=st.sampled_from(SAMPLES), cuts=st.lists(st.integers(0, 400), max_size=60))
def test_how_text_is_split_into_deltas_never_changes_the_phrases(sample: str, cuts: list[int]) -> None:
    assert split_in_pieces(sample, cuts) == split(sample)


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("ab .,!?<>\n3")), max_size=200))
def test_every_word_survives_in_order(text: str) -> None:
    phrases = split(text, first_clause_chars=3, clause_chars=5, max_chars=20)
    words = [w for w in text.split() if any(c.isalnum() for c in w)]
    spoken = [w for p in phrases for w in p.split() if any(c.isalnum() for c in w)]
    if MARKUP_PATTERN.search(text) is None:
        assert spoken == words
    else:
        # "<ab>" is markup, not speech (no emotive tag is spelt with a and b):
        # the letters around it survive in order, without its own.
        assert "".join(filter(str.isalnum, " ".join(spoken))) == "".join(
            filter(str.isalnum, MARKUP_PATTERN.sub("", text))
        )


def test_rejects_non_positive_limits() -> None:
    with pytest.raises(ValueError, match="positive"):
        PhraseSplitter(max_chars=0)


def test_the_token_cap_leaves_a_margin_over_the_longest_phrase() -> None:
    settings = OrpheusSettings()
    # 180 characters at 14 a second is 12.9 s of speech (1 055 tokens); a
    # phrase spoken 1.5x slower than that (pauses, a <laugh>) needs 19.3 s.
    usual = settings.max_phrase_chars / SPOKEN_CHARS_PER_SECOND * TOKENS_PER_SECOND
    assert phrase_token_budget(settings.max_phrase_chars) >= SLOW_SPEECH_MARGIN * usual
    assert phrase_token_budget(180) == 1589 and phrase_token_budget(180) % 7 == 0
    # Before: a 1 200-token cap (14.6 s) cut a phrase spoken below 12.3 characters a second.
    assert settings.max_phrase_tokens >= phrase_token_budget(settings.max_phrase_chars)
    assert settings.check() == []


def test_a_cap_without_the_margin_is_reported_at_start_up() -> None:
    (warning,) = OrpheusSettings(max_phrase_tokens=1200).check()
    assert "max_phrase_tokens=1200" in warning and "1589" in warning
    assert OrpheusSettings(max_phrase_tokens=700, max_phrase_chars=70).check() == []
