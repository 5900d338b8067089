"""Tool calls on the voxtral side: the session's tools, their mistral-common
encoding, parsing a reply's ``[TOOL_CALLS]`` with mistral-common's own
decoder, and the echo engine's documented stand-in rule.

No gRPC and no torch here: the session turns protobuf into these types, the
engines turn them into prompts.

Encoding is mistral-common's, for the checkpoint's tokenizer version
(``ChatCompletionRequest(tools=..., tool_choice=...)`` → ``encode_chat_completion``):
``[AVAILABLE_TOOLS]…[/AVAILABLE_TOOLS]`` before the last user turn, an
assistant turn's calls as ``[TOOL_CALLS]…`` and each result as
``[TOOL_RESULTS]…[/TOOL_RESULTS]`` right after them (Voxtral 2507's tokenizer
is v7: the calls are one JSON list). Parsing is mistral-common's too
(``mistral_common.experimental.tools``), which knows the v2-v7 list form and
the v11+ ``name[ARGS]{...}`` form: nothing here reads the model's text with a
regex.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mistral_common.protocol.instruct.tool_calls import Tool as MistralTool
    from mistral_common.protocol.instruct.tool_calls import ToolCall as MistralToolCall

#: Rounds of calls one turn may make (a call's results may lead to another call).
MAX_TOOL_ROUNDS = 4
#: The echo engine's stand-in rule, as EngineInfo.tool_calls says it.
ECHO_STAND_IN_RULE = (
    "stand-in: when the transcript contains a declared tool's name (underscores as spaces), "
    "that tool is called with the transcript as its first string argument; the reply after "
    "the results repeats them"
)
_CALL_ID_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str = ""
    #: JSON Schema of the arguments object (checked by the gateway).
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Tools:
    """The session's tools and tool_choice ("auto", "none", "required" or a tool's name)."""

    specs: tuple[ToolSpec, ...] = ()
    choice: str = "auto"

    @property
    def offered(self) -> bool:
        return bool(self.specs) and self.choice != "none"


@dataclass(frozen=True)
class ToolCallOut:
    """One call a reply made: its id, the tool's name and the arguments object as JSON text."""

    call_id: str
    name: str
    arguments_json: str


@dataclass(frozen=True)
class ToolOutcome:
    """A call with its result, as the history keeps it (``error`` non-empty: the tool failed)."""

    call: ToolCallOut
    output: str = ""
    error: str = ""

    @property
    def content(self) -> str:
        """What the model reads as the tool's result."""
        return json.dumps({"error": self.error}) if self.error else self.output


def new_call_id() -> str:
    """Mistral's call ids are 9 letters or digits (its validator checks the form)."""
    return "".join(secrets.choice(_CALL_ID_ALPHABET) for _ in range(9))


# ------------------------------------------------------------ mistral-common


def mistral_tools(tools: Tools) -> tuple[list[MistralTool] | None, Any]:
    """The request's ``tools`` and ``tool_choice`` in mistral-common's types (None, AUTO when none offered)."""
    from mistral_common.protocol.instruct.tool_calls import (
        Function,
        NamedToolChoice,
        Tool,
        ToolChoiceEnum,
    )

    if not tools.specs:
        return None, ToolChoiceEnum.auto
    declared = [
        Tool(function=Function(name=s.name, description=s.description, parameters=s.parameters or {}))
        for s in tools.specs
    ]
    choice: Any
    if tools.choice in ("", "auto"):
        choice = ToolChoiceEnum.auto
    elif tools.choice == "none":
        choice = ToolChoiceEnum.none
    elif tools.choice == "required":
        choice = ToolChoiceEnum.any
    else:
        choice = NamedToolChoice.model_validate({"type": "function", "function": {"name": tools.choice}})
    return declared, choice


def mistral_call(call: ToolCallOut) -> MistralToolCall:
    from mistral_common.protocol.instruct.tool_calls import FunctionCall, ToolCall

    return ToolCall(id=call.call_id, function=FunctionCall(name=call.name, arguments=call.arguments_json))


def split_tool_calls(ids: Sequence[int], tokenizer: Any) -> tuple[list[int], list[ToolCallOut]]:
    """A finished generation's ids → (the content's ids, the calls), with mistral-common's decoder.

    ``tokenizer`` is the ``MistralTokenizer``. Ids after the end-of-sequence
    token are ignored. Calls the model wrote without an id get a fresh one;
    arguments are re-serialised (compact JSON). Raises ``ValueError`` on a
    ``[TOOL_CALLS]`` block mistral-common cannot decode.
    """
    from mistral_common.experimental.tools import _decode_tool_calls, _split_content_and_tool_calls

    raw = tokenizer.instruct_tokenizer.tokenizer
    eos = raw.eos_id
    tokens = list(ids)
    if eos in tokens:
        tokens = tokens[: tokens.index(eos)]
    try:
        marker = raw.get_special_token("[TOOL_CALLS]")
    except Exception:
        return tokens, []  # a tokenizer with no tool calls
    content, blocks = _split_content_and_tool_calls(tokens, marker)
    if not blocks:
        return content, []
    calls = _decode_tool_calls(list(blocks), raw)
    out = []
    for call in calls:
        arguments = call.function.arguments
        if isinstance(arguments, str):
            arguments = json.loads(arguments)
        call_id = call.id if call.id and call.id != "null" else new_call_id()
        out.append(ToolCallOut(call_id, call.function.name, json.dumps(arguments, separators=(",", ":"))))
    return content, out


# ------------------------------------------------------------ echo stand-in


def _name_words(name: str) -> list[str]:
    return [w for w in re.split(r"[_\-\s]+", name.lower()) if w]


def stand_in_calls(heard: str, tools: Tools) -> list[ToolCallOut]:
    """The echo engine's rule (ECHO_STAND_IN_RULE): which declared tools the transcript names.

    tool_choice "none" calls nothing; a named choice calls that tool;
    "required" calls the first declared tool when the words name none.
    """
    if not tools.offered:
        return []
    words = re.findall(r"[a-z0-9']+", heard.lower())
    text = " " + " ".join(words) + " "
    chosen = [s for s in tools.specs if " " + " ".join(_name_words(s.name)) + " " in text]
    if tools.choice not in ("", "auto", "required"):
        chosen = [s for s in tools.specs if s.name == tools.choice]
    elif tools.choice == "required" and not chosen:
        chosen = list(tools.specs[:1])
    return [ToolCallOut(new_call_id(), s.name, json.dumps(_stand_in_arguments(s, heard))) for s in chosen]


def _stand_in_arguments(spec: ToolSpec, heard: str) -> dict[str, Any]:
    properties = spec.parameters.get("properties") or {}
    for name, schema in properties.items():
        if isinstance(schema, dict) and schema.get("type", "string") == "string":
            return {name: heard}
    return {}


def stand_in_reply(outcomes: Sequence[ToolOutcome]) -> str:
    """What the echo says once its calls are answered: each result, as the model would speak it."""
    parts = []
    for outcome in outcomes:
        if outcome.error:
            parts.append(f"The {outcome.call.name.replace('_', ' ')} tool failed: {outcome.error}.")
        else:
            parts.append(f"The {outcome.call.name.replace('_', ' ')} tool says: {outcome.output}.")
    return " ".join(parts)
