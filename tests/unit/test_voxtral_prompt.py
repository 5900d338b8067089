"""Voxtral prompt building: history → mistral-common requests → tokens, and ids → text deltas.

Tokenized with the test tokenizer of ``random_checkpoint`` (mistral-common's
bundled vocabulary + an audio section). Its special-token ranks are its own,
so tokens are looked up by name, never by Voxtral's real ids.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mistral_common.protocol.instruct.chunk import AudioChunk, TextChunk
from mistral_common.protocol.instruct.messages import AssistantMessage, SystemMessage, UserMessage
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

from voxmesh.errors import InvalidArgument
from voxmesh.services.voxtral.engine import Message
from voxmesh.services.voxtral.random_checkpoint import VOXTRAL_AUDIO_SECTION, tekken_with_audio
from voxmesh.services.voxtral.voxtral_prompt import TextDeltas, chat_request, transcription_request, wav_bytes

ONE_SECOND = np.linspace(-0.5, 0.5, 16_000, dtype=np.float32)
WINDOW_TOKENS = 375  # 30 s at 12.5 audio tokens/s


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> MistralTokenizer:
    path = tmp_path_factory.mktemp("tekken") / "tekken.json"
    path.write_text(json.dumps(tekken_with_audio()))
    return MistralTokenizer.from_file(str(path))


def special(tokenizer: MistralTokenizer, name: str) -> int:
    return int(tokenizer.instruct_tokenizer.tokenizer.get_special_token(name))


def text_of(message: Any) -> str:
    return message.content if isinstance(message.content, str) else ""


def test_tokenizer_file_has_an_audio_section(tmp_path: Path) -> None:
    document = tekken_with_audio(inner_vocab=1000)
    assert document["audio"] == VOXTRAL_AUDIO_SECTION
    assert len(document["vocab"]) == 1000
    names = {t["token_str"] for t in document["special_tokens"]}
    assert {"[AUDIO]", "[BEGIN_AUDIO]", "[TRANSCRIBE]", "[SYSTEM_PROMPT]", "</s>"} <= names
    assert len(names) == document["config"]["default_num_special_tokens"]


def test_text_turn_with_history_carries_the_instructions_in_the_last_user_message(
    tokenizer: MistralTokenizer,
) -> None:
    request = chat_request(
        [
            Message("system", "Be brief."),
            Message("user", "hi"),
            Message("assistant", "hello"),
            Message("user", "how are you"),
        ]
    )
    # No SystemMessage: Voxtral 2507's card says system prompts are not yet supported.
    assert [type(m) for m in request.messages] == [UserMessage, AssistantMessage, UserMessage]
    # Where mistral-common puts a system prompt for tokenizers with no system role: before the
    # last user message's text. The history holds only what was said.
    assert [text_of(m) for m in request.messages] == ["hi", "hello", "Be brief.\n\nhow are you"]
    tokens = tokenizer.encode_chat_completion(request).tokens
    assert special(tokenizer, "[SYSTEM_PROMPT]") not in tokens


def test_a_reply_cut_off_before_any_word_was_heard_is_left_out() -> None:
    request = chat_request([Message("user", "first"), Message("assistant", ""), Message("user", "second")])
    assert [type(m) for m in request.messages] == [UserMessage, UserMessage]


def test_audio_turn_puts_the_instructions_after_the_audio(tokenizer: MistralTokenizer) -> None:
    request = chat_request(
        [
            Message("system", "Be kind."),
            Message("user", "hi"),
            Message("assistant", "hello"),
            Message("user", audio=ONE_SECOND),
        ]
    )
    assert [type(m) for m in request.messages] == [UserMessage, AssistantMessage, UserMessage]
    assert text_of(request.messages[0]) == "hi"  # not "Be kind.\n\nhi": the instructions ride on this turn
    content = request.messages[-1].content
    # The model card's layout: the audio first, then the text.
    assert isinstance(content, list) and [type(c) for c in content] == [AudioChunk, TextChunk]
    assert isinstance(content[1], TextChunk) and content[1].text == "Be kind."
    # Accepted by Voxtral's v7 tokenizer, which refuses a SystemMessage beside audio.
    tokenized = tokenizer.encode_chat_completion(request)
    assert tokenized.tokens.count(special(tokenizer, "[AUDIO]")) == WINDOW_TOKENS
    assert special(tokenizer, "[SYSTEM_PROMPT]") not in tokenized.tokens
    text = tokenizer.decode(tokenized.tokens, special_token_policy=SpecialTokenPolicy.KEEP)
    assert text.endswith("Be kind.[/INST]")
    with pytest.raises(ValueError, match=r"(?i)system messages"):
        tokenizer.encode_chat_completion(
            ChatCompletionRequest(messages=[SystemMessage(content="Be kind."), request.messages[-1]])
        )


def test_instructions_are_in_force_on_every_turn(tokenizer: MistralTokenizer) -> None:
    history = [Message("system", "Answer in French.")]
    for turn in ("one", "two", "three"):
        request = chat_request([*history, Message("user", turn)])
        text = tokenizer.decode(
            tokenizer.encode_chat_completion(request).tokens, special_token_policy=SpecialTokenPolicy.KEEP
        )
        # Once per prompt, in the turn being answered.
        assert text.count("Answer in French.") == 1
        assert text.endswith(f"[INST]Answer in French.\n\n{turn}[/INST]")
        history += [Message("user", turn), Message("assistant", f"reply {turn}")]


@pytest.mark.parametrize(("seconds", "windows"), [(1, 1), (30, 1), (31, 2)])
def test_audio_is_padded_to_whole_30_s_windows(
    tokenizer: MistralTokenizer, seconds: int, windows: int
) -> None:
    audio = np.zeros(seconds * 16_000, np.float32)
    tokenized = tokenizer.encode_chat_completion(chat_request([Message("user", audio=audio)]))
    assert tokenized.tokens.count(special(tokenizer, "[BEGIN_AUDIO]")) == 1
    assert tokenized.tokens.count(special(tokenizer, "[AUDIO]")) == windows * WINDOW_TOKENS
    assert [a.audio_array.shape for a in tokenized.audios] == [(windows * 480_000,)]


def test_text_request_has_no_audio(tokenizer: MistralTokenizer) -> None:
    tokenized = tokenizer.encode_chat_completion(
        chat_request([Message("system", "sys"), Message("user", "hi")])
    )
    assert special(tokenizer, "[AUDIO]") not in tokenized.tokens and not tokenized.audios


def test_transcription_request(tokenizer: MistralTokenizer) -> None:
    tokenized = tokenizer.encode_transcription(transcription_request(ONE_SECOND, "en"))
    assert tokenized.tokens[-1] == special(tokenizer, "[TRANSCRIBE]")
    assert tokenized.tokens.count(special(tokenizer, "[AUDIO]")) == WINDOW_TOKENS
    text = tokenizer.decode(tokenized.tokens, special_token_policy=SpecialTokenPolicy.IGNORE)
    assert "lang:en" in text


def test_empty_audio_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidArgument, match=r"^audio\.pcm:"):
        wav_bytes(np.zeros(0, np.float32))


def test_the_last_message_must_be_the_user_turn() -> None:
    with pytest.raises(ValueError, match="last message"):
        chat_request([Message("user", "hi"), Message("assistant", "hello")])


def test_text_deltas_rebuild_the_text_without_broken_characters(tokenizer: MistralTokenizer) -> None:
    tekken = tokenizer.instruct_tokenizer.tokenizer
    text = "Héllo wörld, 你好 — ça va? 👋"
    ids = tekken.encode(text, bos=False, eos=False)

    def decode(ids: list[int]) -> str:
        return str(tokenizer.decode(ids, special_token_policy=SpecialTokenPolicy.IGNORE))

    deltas = TextDeltas(decode)
    pieces = [deltas.push([i]) for i in ids]
    pieces.append(deltas.flush())
    assert "".join(pieces) == text
    assert not any("\ufffd" in p for p in pieces)
    assert sum(1 for p in pieces if p) > 3


def test_text_deltas_drop_special_tokens(tokenizer: MistralTokenizer) -> None:
    eos = tokenizer.instruct_tokenizer.tokenizer.eos_id
    ids = tokenizer.instruct_tokenizer.tokenizer.encode("ok", bos=False, eos=False)

    deltas = TextDeltas(
        lambda ids: str(tokenizer.decode(ids, special_token_policy=SpecialTokenPolicy.IGNORE))
    )
    assert "".join(deltas.push([i]) for i in [*ids, eos]) + deltas.flush() == "ok"


def test_request_type() -> None:
    assert isinstance(chat_request([Message("user", "x")]), ChatCompletionRequest)
