"""The Orpheus token protocol: prompt ids, audio ids, frames, resynchronisation."""

from __future__ import annotations

import pytest
from voxmesh.services.orpheus.orpheus_tokens import (
    AUDIO_TOKEN_BASE,
    AUDIO_TOKEN_END,
    BOS,
    CODEBOOK_SIZE,
    END_OF_HUMAN,
    END_OF_SPEECH,
    END_OF_TEXT,
    START_OF_AI,
    START_OF_HUMAN,
    START_OF_SPEECH,
    FrameParser,
    audio_token,
    codebooks,
    frame_tokens,
    prompt_ids,
)
from voxmesh.services.orpheus.random_checkpoint import ORPHEUS_VOCAB_SIZE, byte_tokenizer
from voxmesh.services.orpheus.voices import VOICES, resolve_voice, strip_tags

from voxmesh.errors import UnknownVoice

FRAME_A = (0, 1, 2, 3, 4, 5, 6)
FRAME_B = (4095, 4094, 4093, 4092, 4091, 4090, 4089)
FRAME_ZERO = (0, 0, 0, 0, 0, 0, 0)


def test_prompt_layout_is_exactly_what_orpheus_was_trained_on() -> None:
    tokenizer = byte_tokenizer()
    ids = prompt_ids(tokenizer, "tara", "Hi <laugh>")
    text = tokenizer.encode("tara: Hi <laugh>", add_special_tokens=False)
    assert ids == [START_OF_HUMAN, BOS, *text, END_OF_TEXT, END_OF_HUMAN, START_OF_AI, START_OF_SPEECH]
    assert ids[:2] == [128259, 128000] and ids[-4:] == [128009, 128260, 128261, 128257]
    assert tokenizer.decode(text) == "tara: Hi <laugh>"


def test_audio_ids_cover_the_vocabulary_layout() -> None:
    assert AUDIO_TOKEN_BASE == 128_266 and AUDIO_TOKEN_END == 156_938 <= ORPHEUS_VOCAB_SIZE
    assert audio_token(0, 0) == 128_266
    assert audio_token(6, 4095) == AUDIO_TOKEN_END - 1
    assert audio_token(3, 17) == 128_266 + 17 + 3 * 4096
    with pytest.raises(ValueError, match="out of range"):
        audio_token(0, CODEBOOK_SIZE)
    with pytest.raises(ValueError, match="out of range"):
        audio_token(7, 0)


def test_frame_maps_to_the_three_codebooks() -> None:
    c0, c1, c2 = codebooks([FRAME_A, FRAME_B])
    assert c0 == [0, 4095]
    assert c1 == [1, 4, 4094, 4091]
    assert c2 == [2, 3, 5, 6, 4093, 4092, 4090, 4089]


def test_every_frame_comes_out_including_the_first_and_last() -> None:
    parser = FrameParser()
    frames = parser.push(frame_tokens(FRAME_A) + frame_tokens(FRAME_B) + frame_tokens(FRAME_A))
    assert frames == [FRAME_A, FRAME_B, FRAME_A]
    assert parser.dropped_tokens == 0 and parser.resyncs == 0


def test_code_zero_is_valid_and_code_4096_is_not() -> None:
    parser = FrameParser()
    assert parser.push(frame_tokens(FRAME_ZERO)) == [FRAME_ZERO]
    # "code 4096" in slot 2 is really slot 3's code 0: out of place, never decoded.
    bad = frame_tokens(FRAME_A)
    bad[2] = AUDIO_TOKEN_BASE + 4096 + 2 * CODEBOOK_SIZE
    assert parser.push(bad) == []
    assert parser.dropped_tokens == 7 and parser.resyncs == 1
    assert parser.push(frame_tokens(FRAME_B)) == [FRAME_B]


def test_frames_arrive_one_token_at_a_time() -> None:
    parser = FrameParser()
    out = [f for token in frame_tokens(FRAME_A) + frame_tokens(FRAME_B) for f in parser.push([token])]
    assert out == [FRAME_A, FRAME_B]


def test_garbage_mid_frame_drops_that_frame_and_resyncs_on_slot_zero() -> None:
    parser = FrameParser()
    tokens = [*frame_tokens(FRAME_A)[:4], 1234, 99, *frame_tokens(FRAME_A)[4:], *frame_tokens(FRAME_B)]
    assert parser.push(tokens) == [FRAME_B]
    # 4 tokens of the broken frame, 2 text ids, 3 orphaned slot 4..6 ids.
    assert parser.dropped_tokens == 9
    assert parser.resyncs == 1


def test_a_frame_starting_mid_way_is_skipped_until_slot_zero() -> None:
    parser = FrameParser()
    assert parser.push(frame_tokens(FRAME_A)[3:] + frame_tokens(FRAME_B)) == [FRAME_B]
    assert parser.dropped_tokens == 4 and parser.resyncs == 1


def test_slot_zero_restarts_a_frame_at_once() -> None:
    parser = FrameParser()
    assert parser.push(frame_tokens(FRAME_A)[:3] + frame_tokens(FRAME_B)) == [FRAME_B]
    assert parser.dropped_tokens == 3


def test_ids_past_the_audio_range_are_not_audio() -> None:
    parser = FrameParser()
    assert parser.push([AUDIO_TOKEN_END, AUDIO_TOKEN_END + 1, *frame_tokens(FRAME_A)]) == [FRAME_A]
    assert parser.dropped_tokens == 2


def test_end_of_speech_drops_an_unfinished_frame_and_ignores_the_rest() -> None:
    parser = FrameParser()
    tokens = frame_tokens(FRAME_A) + frame_tokens(FRAME_B)[:5] + [END_OF_SPEECH] + frame_tokens(FRAME_A)
    assert parser.push(tokens) == [FRAME_A]
    assert parser.ended and parser.dropped_tokens == 5
    assert parser.push(frame_tokens(FRAME_A)) == []


def test_voices() -> None:
    assert VOICES == ("tara", "leah", "jess", "leo", "dan", "mia", "zac", "zoe")
    assert resolve_voice("", "tara") == "tara"
    assert resolve_voice("Leo", "tara") == "leo"
    with pytest.raises(UnknownVoice, match=r"config\.voice: unknown voice .bob."):
        resolve_voice("bob", "tara")


def test_strip_tags_for_engines_that_cannot_laugh() -> None:
    assert strip_tags("Oh <laugh> that is <sigh>  funny.") == "Oh that is funny."
    assert strip_tags("<gasp>") == ""
