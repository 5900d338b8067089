"""The Orpheus token protocol: prompt ids, audio ids, frames, resynchronisation."""

from __future__ import annotations

import pytest

from voxmesh.errors import UnknownVoice
from voxmesh.services.orpheus.orpheus_tokens import (
    AUDIO_TOKEN_BASE,
    AUDIO_TOKEN_END,
    BOS,
    CODEBOOK_SIZE,
    END_OF_HUMAN,
    END_OF_SPEECH_IDS,
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


def test_only_emotive_tags_reach_the_model_in_the_prompt() -> None:
    tokenizer = byte_tokenizer()
    ids = prompt_ids(tokenizer, "tara", "Hi <whisper> there <Laugh> now</em>")
    text = tokenizer.encode("tara: Hi there <laugh> now", add_special_tokens=False)
    assert ids[2:-4] == text


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
    assert parser.dropped_tokens == 0 and parser.lost_frames == 0


def test_code_zero_is_valid_and_code_4096_is_not() -> None:
    parser = FrameParser()
    assert parser.push(frame_tokens(FRAME_ZERO)) == [FRAME_ZERO]
    # "code 4096" in slot 2 is really slot 3's code 0: out of place, never
    # decoded; the real slot-2 id after it completes the frame.
    bad = frame_tokens(FRAME_A)
    bad.insert(2, AUDIO_TOKEN_BASE + 4096 + 2 * CODEBOOK_SIZE)
    assert parser.push(bad) == [FRAME_A]
    assert parser.dropped_tokens == 1 and parser.lost_frames == 0


def test_frames_arrive_one_token_at_a_time() -> None:
    parser = FrameParser()
    out = [f for token in frame_tokens(FRAME_A) + frame_tokens(FRAME_B) for f in parser.push([token])]
    assert out == [FRAME_A, FRAME_B]


@pytest.mark.parametrize(
    "stray",
    [1234, 99, START_OF_HUMAN, AUDIO_TOKEN_END, audio_token(5, 7), audio_token(1, 7)],
    ids=["text", "text2", "control", "past-audio", "later-slot", "earlier-slot"],
)
def test_a_stray_id_inside_a_frame_is_skipped_and_the_frame_kept(stray: int) -> None:
    # Before: the frame was thrown away (an 85 ms jump in the audio).
    parser = FrameParser()
    tokens = [*frame_tokens(FRAME_A)[:4], stray, *frame_tokens(FRAME_A)[4:], *frame_tokens(FRAME_B)]
    assert parser.push(tokens) == [FRAME_A, FRAME_B]
    assert parser.dropped_tokens == parser.skipped_ids == 1 and parser.lost_frames == 0


def test_several_strays_in_one_frame_are_all_skipped() -> None:
    parser = FrameParser()
    tokens = frame_tokens(FRAME_A)
    assert parser.push([tokens[0], 1, tokens[1], 2, 3, tokens[2], *tokens[3:6], 4, tokens[6]]) == [FRAME_A]
    assert parser.dropped_tokens == 4 and parser.lost_frames == 0


def test_a_stray_slot_zero_id_inside_a_frame_is_skipped() -> None:
    parser = FrameParser()
    tokens = [*frame_tokens(FRAME_A)[:3], audio_token(0, 9), *frame_tokens(FRAME_A)[3:]]
    assert parser.push(tokens) == [FRAME_A]
    assert parser.dropped_tokens == 1 and parser.lost_frames == 0


def test_a_repeated_slot_zero_keeps_one_frame() -> None:
    parser = FrameParser()
    assert parser.push([audio_token(0, 9), *frame_tokens(FRAME_A)]) == [FRAME_A]
    assert parser.dropped_tokens == 1 and parser.lost_frames == 0


def test_a_frame_missing_a_slot_is_lost_and_the_next_one_kept() -> None:
    parser = FrameParser()
    a = frame_tokens(FRAME_A)
    # Slot 3 never comes: 4..6 are strays, the next slot 0 starts frame B.
    assert parser.push([*a[:3], *a[4:], *frame_tokens(FRAME_B)]) == [FRAME_B]
    assert parser.lost_frames == 1 and parser.dropped_tokens == 6


def test_a_frame_starting_mid_way_is_skipped_until_slot_zero() -> None:
    parser = FrameParser()
    assert parser.push(frame_tokens(FRAME_A)[3:] + frame_tokens(FRAME_B)) == [FRAME_B]
    assert parser.dropped_tokens == 4 and parser.lost_frames == 0


def test_slot_zero_then_slot_one_restarts_a_frame() -> None:
    parser = FrameParser()
    assert parser.push(frame_tokens(FRAME_A)[:3] + frame_tokens(FRAME_B)) == [FRAME_B]
    assert parser.dropped_tokens == 3 and parser.lost_frames == 1


def test_ids_past_the_audio_range_are_not_audio() -> None:
    parser = FrameParser()
    assert parser.push([AUDIO_TOKEN_END, AUDIO_TOKEN_END + 1, *frame_tokens(FRAME_A)]) == [FRAME_A]
    assert parser.dropped_tokens == 2


@pytest.mark.parametrize("end", sorted(END_OF_SPEECH_IDS))
def test_end_of_speech_drops_an_unfinished_frame_and_ignores_the_rest(end: int) -> None:
    parser = FrameParser()
    tokens = frame_tokens(FRAME_A) + frame_tokens(FRAME_B)[:5] + [end] + frame_tokens(FRAME_A)
    assert parser.push(tokens) == [FRAME_A]
    assert parser.ended and parser.dropped_tokens == 5 and parser.lost_frames == 1
    assert parser.push(frame_tokens(FRAME_A)) == []


def test_the_end_of_speech_ids_are_the_three_orpheus_ends() -> None:
    # <|eot_id|> is the checkpoint's own eos_token_id; 128262 is END_OF_AI.
    assert END_OF_SPEECH_IDS == {128_258, 128_009, 128_262}


def test_voices() -> None:
    assert VOICES == ("tara", "leah", "jess", "leo", "dan", "mia", "zac", "zoe")
    assert resolve_voice("", "tara") == "tara"
    assert resolve_voice("Leo", "tara") == "leo"
    with pytest.raises(UnknownVoice, match=r"config\.voice: unknown voice .bob."):
        resolve_voice("bob", "tara")


def test_strip_tags_for_engines_that_cannot_laugh() -> None:
    assert strip_tags("Oh <laugh> that is <sigh>  funny.") == "Oh that is funny."
    assert strip_tags("<gasp>") == ""
