"""services.voxtral.tools and the tool parts of the voxtral prompt and history.

Parsing is mistral-common's (``split_tool_calls``); here it runs on the v7
tekken file the tiny checkpoints use, with calls as the model would write them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

from voxmesh.services.voxtral.engine import Message
from voxmesh.services.voxtral.history import History
from voxmesh.services.voxtral.random_checkpoint import tekken_with_audio
from voxmesh.services.voxtral.tools import (
    ToolCallOut,
    ToolOutcome,
    Tools,
    ToolSpec,
    split_tool_calls,
    stand_in_calls,
    stand_in_reply,
)
from voxmesh.services.voxtral.voxtral_prompt import TextDeltas, chat_request

WEATHER = ToolSpec("weather", "forecast", {"type": "object", "properties": {"city": {"type": "string"}}})
BOOK = ToolSpec("book_table", "book", {"type": "object", "properties": {"people": {"type": "integer"}}})


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("tekken") / "tekken.json"
    path.write_text(json.dumps(tekken_with_audio()))
    return MistralTokenizer.from_file(str(Path(path)))


def ids(tokenizer: Any, text: str, *, call: bool = True) -> list[int]:
    raw = tokenizer.instruct_tokenizer.tokenizer
    head = [raw.get_special_token("[TOOL_CALLS]")] if call else []
    return [*head, *raw.encode(text, bos=False, eos=False), raw.eos_id]


def test_calls_are_parsed_by_mistral_common_with_ids_made_when_missing(tokenizer: Any) -> None:
    written = '[{"name": "weather", "arguments": {"city": "Rome"}}, {"name": "book_table", "arguments": {"people": 2}}]'
    content, calls = split_tool_calls(ids(tokenizer, written), tokenizer)
    assert content == []
    assert [(c.name, json.loads(c.arguments_json)) for c in calls] == [
        ("weather", {"city": "Rome"}),
        ("book_table", {"people": 2}),
    ]
    assert all(len(c.call_id) == 9 and c.call_id.isalnum() for c in calls)
    assert calls[0].call_id != calls[1].call_id


def test_a_call_cut_off_mid_arguments_is_refused_not_sent_half(tokenizer: Any) -> None:
    with pytest.raises(ValueError):
        split_tool_calls(ids(tokenizer, '[{"name": "weather", "arguments": {"ci')[:-1], tokenizer)


def test_text_deltas_keep_the_call_out_of_the_spoken_text(tokenizer: Any) -> None:
    raw = tokenizer.instruct_tokenizer.tokenizer
    from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy

    deltas = TextDeltas(
        lambda i: raw.decode(i, special_token_policy=SpecialTokenPolicy.IGNORE),
        raw.get_special_token("[TOOL_CALLS]"),
    )
    said = raw.encode("Let me check.", bos=False, eos=False)
    call = ids(tokenizer, '[{"name": "weather", "arguments": {"city": "Oslo"}}]')
    # The call starts inside a push and goes on over later ones, as a model streams it.
    spoken = (
        deltas.push(said[:-1]) + deltas.push([said[-1], *call[:3]]) + deltas.push(call[3:]) + deltas.flush()
    )
    assert spoken == "Let me check."
    assert deltas.tool_ids == call
    assert split_tool_calls(deltas.tool_ids, tokenizer)[1][0].name == "weather"


def test_the_chat_puts_tools_calls_and_results_where_v7_wants_them(tokenizer: Any) -> None:
    from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy

    call = ToolCallOut("abcDEF123", "weather", '{"city": "Paris"}')
    history = History("", lambda t: len(t.split()) + 1, context_tokens=10_000, history_tokens=10_000)
    history.record(1, "weather in paris", "Sunny in Paris.", [ToolOutcome(call, '{"sky": "sunny"}')])
    messages = history.messages(Message("user", "and in rome?"))
    assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant", "user"]
    request = chat_request(messages, Tools((WEATHER,)))
    text = tokenizer.instruct_tokenizer.tokenizer.decode(
        tokenizer.encode_chat_completion(request).tokens, special_token_policy=SpecialTokenPolicy.KEEP
    )
    assert text.startswith("<s>[INST]weather in paris[/INST][TOOL_CALLS]")
    assert text.index("[TOOL_RESULTS]") < text.index("Sunny in Paris.") < text.index("[AVAILABLE_TOOLS]")
    assert text.endswith("[/AVAILABLE_TOOLS][INST]and in rome?[/INST]")
    # tool_choice none offers no call to the model at all.
    none = chat_request(messages, Tools((WEATHER,), "none"))
    assert none.tool_choice == "none"


def test_a_cancelled_call_leaves_only_the_words_heard_in_the_history() -> None:
    history = History("", lambda t: len(t.split()) + 1, context_tokens=10_000, history_tokens=10_000)
    history.record(1, "weather in paris", "Let me", [])  # the barge-in came while the call was open
    assert [m.role for m in history.messages(Message("user", "x"))] == ["user", "assistant", "user"]


def test_the_echo_stand_in_rule() -> None:
    tools = Tools((WEATHER, BOOK))
    (call,) = stand_in_calls("what is the weather in paris", tools)
    assert call.name == "weather" and json.loads(call.arguments_json) == {
        "city": "what is the weather in paris"
    }
    (booked,) = stand_in_calls("please book table for two", tools)
    assert booked.name == "book_table" and json.loads(booked.arguments_json) == {}  # no string argument
    assert stand_in_calls("hello there", tools) == []
    assert stand_in_calls("the weather", Tools((WEATHER,), "none")) == []
    assert [c.name for c in stand_in_calls("hello", Tools((WEATHER, BOOK), "required"))] == ["weather"]
    assert [c.name for c in stand_in_calls("the weather", Tools((WEATHER, BOOK), "book_table"))] == [
        "book_table"
    ]
    said = stand_in_reply([ToolOutcome(call, "sunny"), ToolOutcome(booked, error="full")])
    assert said == "The weather tool says: sunny. The book table tool failed: full."
