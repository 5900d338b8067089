"""Tool calls through a real voxtral session and model engine, in-process, on a tiny checkpoint.

Shared by the ``transformers`` (tests/integration) and ``vllm`` (tests/vllm)
tests. Every prompt the engine hands its model is kept as token ids (the
spy on ``MistralPromptEngine._prompt``), so a test compares it with
mistral-common's own encoding of the same chat, token for token. The model
is made to write a tool call by forcing its tokens (the engine-specific
part: a logits processor), so parsing runs on ids the model really sampled.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from voxmesh.services.voxtral.mistral_engine import MistralPromptEngine
from voxmesh.services.voxtral.servicer import VoxtralServicer
from voxmesh.services.voxtral.settings import VoxtralSettings
from voxmesh.v1 import common_pb2, voxtral_pb2

Request = voxtral_pb2.RespondRequest
PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER = common_pb2.Tool(
    name="weather", description="The weather forecast for a city", parameters_json=json.dumps(PARAMETERS)
)
#: A past turn that called the tool, as the gateway hands it over (RespondConfig.history).
PAST = voxtral_pb2.Exchange(
    turn_id=1,
    user="what is the weather in paris",
    assistant="It is sunny in Paris.",
    tool_calls=[
        voxtral_pb2.ToolExchange(
            call_id="abcDEF123",
            name="weather",
            arguments_json='{"city": "Paris"}',
            result=common_pb2.ToolResult(call_id="abcDEF123", output='{"sky": "sunny"}'),
        )
    ],
)
#: The call the model is made to write (Voxtral 2507's tokenizer is v7: a JSON list).
FORCED_CALL = '[{"name": "weather", "arguments": {"city": "Rome"}}]'


@dataclass
class ToolConversation:
    events: list[voxtral_pb2.RespondResponse] = field(default_factory=list)
    #: The token ids of every reply prompt the engine gave its model, in order.
    prompts: list[list[int]] = field(default_factory=list)

    def of(self, kind: str) -> list[Any]:
        return [getattr(e, kind) for e in self.events if e.WhichOneof("event") == kind]


def tool_call_ids(engine: MistralPromptEngine) -> list[int]:
    """[TOOL_CALLS] FORCED_CALL </s> as the checkpoint's tokenizer spells it."""
    raw = engine.tokenizer.instruct_tokenizer.tokenizer
    return [raw.get_special_token("[TOOL_CALLS]"), *raw.encode(FORCED_CALL, bos=False, eos=False), raw.eos_id]


def expected_prompts(
    engine: MistralPromptEngine, call: voxtral_pb2.ReplyToolCall
) -> tuple[list[int], list[int]]:
    """mistral-common's encoding of turn 2's two prompts: the question, then with its call's result."""
    from mistral_common.protocol.instruct.messages import AssistantMessage, ToolMessage, UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.protocol.instruct.tool_calls import Function, FunctionCall, Tool, ToolCall

    tools = [Tool(function=Function(name="weather", description=WEATHER.description, parameters=PARAMETERS))]
    chat: list[Any] = [
        UserMessage(content="what is the weather in paris"),
        AssistantMessage(
            tool_calls=[
                ToolCall(id="abcDEF123", function=FunctionCall(name="weather", arguments='{"city": "Paris"}'))
            ]
        ),
        ToolMessage(content='{"sky": "sunny"}', tool_call_id="abcDEF123", name="weather"),
        AssistantMessage(content="It is sunny in Paris."),
        UserMessage(content="and in rome?"),
    ]
    first = engine.tokenizer.encode_chat_completion(ChatCompletionRequest(messages=chat, tools=tools)).tokens
    chat += [
        AssistantMessage(
            tool_calls=[
                ToolCall(
                    id=call.call_id, function=FunctionCall(name=call.name, arguments=call.arguments_json)
                )
            ]
        ),
        ToolMessage(content="rainy, 14 degrees", tool_call_id=call.call_id, name="weather"),
    ]
    second = engine.tokenizer.encode_chat_completion(ChatCompletionRequest(messages=chat, tools=tools)).tokens
    return list(first), list(second)


async def converse_with_tools(
    engine: MistralPromptEngine, settings: VoxtralSettings, result: str = "rainy, 14 degrees"
) -> ToolConversation:
    """Turn 2, "and in rome?", on a session whose history holds turn 1's call; its calls answered with ``result``."""
    conversation = ToolConversation()
    original = engine._prompt

    def spy(tokenized: Any, max_tokens: int, *, has_audio: bool) -> Any:
        conversation.prompts.append(list(tokenized.tokens))
        return original(tokenized, max_tokens, has_audio=has_audio)

    engine._prompt = spy  # type: ignore[method-assign]
    requests: asyncio.Queue[Request | None] = asyncio.Queue()
    config = voxtral_pb2.RespondConfig(
        session_id="t", mode=common_pb2.TURN_MODE_STREAM, history=[PAST], tools=[WEATHER]
    )
    requests.put_nowait(Request(config=config))
    requests.put_nowait(Request(text=voxtral_pb2.TextTurn(turn_id=2, text="and in rome?")))

    async def iterate() -> AsyncIterator[Request]:
        while (request := await requests.get()) is not None:
            yield request

    try:
        first = await anext(aiter(iterate()))
        session = VoxtralServicer(engine, settings)._session(first.config)
        async with asyncio.timeout(300):
            async for event in session.run(iterate()):
                conversation.events.append(event)
                kind = event.WhichOneof("event")
                if kind == "tool_calls":
                    results = [
                        common_pb2.ToolResult(call_id=c.call_id, output=result)
                        for c in event.tool_calls.calls
                    ]
                    requests.put_nowait(
                        Request(tool_results=voxtral_pb2.ToolResults(turn_id=2, results=results))
                    )
                elif kind in ("done", "failed"):
                    requests.put_nowait(None)
    finally:
        del engine._prompt  # type: ignore[method-assign]
    return conversation


def assert_tool_round_trip(engine: MistralPromptEngine, conversation: ToolConversation) -> None:
    """The call is parsed from the forced tokens, no part of it is spoken, and both prompts are mistral-common's."""
    assert not conversation.of("failed"), conversation.of("failed")
    (calls,) = conversation.of("tool_calls")
    (call,) = calls.calls
    assert call.name == "weather" and json.loads(call.arguments_json) == {"city": "Rome"}
    assert len(call.call_id) == 9 and call.call_id.isalnum()  # Mistral's id form, made for a v7 call
    # The call's text went to the parser, never to the speaker: no reply delta came before it.
    first_call = next(i for i, e in enumerate(conversation.events) if e.WhichOneof("event") == "tool_calls")
    assert not [e for e in conversation.events[:first_call] if e.WhichOneof("event") == "reply"]
    (done,) = conversation.of("done")
    assert done.finish_reason in ("stop", "length")
    first, second = expected_prompts(engine, call)
    assert conversation.prompts == [first, second]
    from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy

    raw = engine.tokenizer.instruct_tokenizer.tokenizer
    # Where the format puts things: [AVAILABLE_TOOLS] before the last user turn, the result
    # in [TOOL_RESULTS] right after the call, and the prompt ends there for the reply to go on.
    text = raw.decode(second, special_token_policy=SpecialTokenPolicy.KEEP)
    assert text.index("[AVAILABLE_TOOLS]") < text.index("[INST]and in rome?")
    assert text.endswith("[/TOOL_RESULTS]") and "rainy, 14 degrees" in text.split("[TOOL_RESULTS]")[-1]
