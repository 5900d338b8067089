"""OpenAI Realtime's GA function calling, mapped onto voxmesh's tool calls.

========================================  ==========================================================
Realtime (GA)                             voxmesh
========================================  ==========================================================
``session.tools`` (type ``function``)     ``SessionConfig.tools`` (name, description, parameters)
``session.tool_choice``                   ``SessionConfig.tool_choice`` (auto, none, required, a name)
``response.output_item.added``            a ``ToolCall`` (one ``function_call`` item per call)
``response.function_call_arguments.*``    its ``arguments_json``: one delta (calls are parsed whole),
                                          then ``.done``
``response.done`` (status completed)      every call of the round was sent (``calls_in_round``)
``conversation.item.create``              ``ToolResult`` (``output``; voxmesh's ``error`` is not in
  (``function_call_output``)              the GA item: a failure is said in the output)
``response.create`` after the outputs     ``ReplyRequest``: the same turn's reply goes on, as a new
                                          response (the edge opens sessions with
                                          ``tools_wait_for_reply``)
``ToolCallCancelled``                     the call's item is ``incomplete``: a ``conversation.item.done``
========================================  ==========================================================

A call leaves the gateway only for a turn the user will hear, so none of
this happens for a reply made in the user's pause that they spoke over.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from voxmesh.client import ToolCall
from voxmesh.realtime.protocol_error import ProtocolError, unsupported

#: The edge refuses output items larger than the gateway takes (gateway.tool_calls.MAX_RESULT_CHARS).
MAX_OUTPUT_CHARS = 16 * 1024


def session_tools(value: Any, param: str) -> tuple[dict[str, Any], ...]:
    """``session.tools`` → OpenAI function tools for ``AsyncSession.connect(tools=...)``."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ProtocolError("tools must be a list", param=param)
    tools = []
    for i, tool in enumerate(value):
        where = f"{param}[{i}]"
        if not isinstance(tool, dict):
            raise ProtocolError("a tool must be an object", param=where)
        if tool.get("type", "function") != "function":
            raise unsupported(f"{where}.type", f"{tool.get('type')!r} tools (only 'function'; no MCP)")
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise ProtocolError("a function tool needs a name", param=f"{where}.name")
        parameters = tool.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(parameters, dict):
            raise ProtocolError("parameters must be a JSON Schema object", param=f"{where}.parameters")
        description = tool.get("description") or ""
        tools.append({"type": "function", "name": name, "description": description, "parameters": parameters})
    return tuple(tools)


def session_tool_choice(value: Any, param: str) -> str:
    """``session.tool_choice``: "auto", "none", "required" or ``{"type": "function", "name": ...}``."""
    if value is None:
        return "auto"
    if value in ("auto", "none", "required"):
        return str(value)
    if isinstance(value, dict) and value.get("type") == "function" and isinstance(value.get("name"), str):
        return str(value["name"])
    raise unsupported(param, f"tool_choice {value!r} (auto, none, required or a function)")


def tool_choice_json(choice: str) -> Any:
    return choice if choice in ("auto", "none", "required") else {"type": "function", "name": choice}


def function_call_item(call: ToolCall, item_id: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "function_call",
        "status": status,
        "call_id": call.call_id,
        "name": call.name,
        "arguments": call.arguments_json if status != "in_progress" else "",
    }


def function_call_output_item(item_id: str, call_id: str, output: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "function_call_output",
        "status": "completed",
        "call_id": call_id,
        "output": output,
    }


def output_of(item: dict[str, Any]) -> tuple[str, str]:
    """A ``function_call_output`` item's (call_id, output); raises ProtocolError naming the field."""
    call_id, output = item.get("call_id"), item.get("output")
    if not isinstance(call_id, str) or not call_id:
        raise ProtocolError("a function_call_output needs the call_id it answers", param="item.call_id")
    if not isinstance(output, str):
        raise ProtocolError("output must be a string (JSON text, as a rule)", param="item.output")
    if len(output) > MAX_OUTPUT_CHARS:
        raise ProtocolError(f"output longer than {MAX_OUTPUT_CHARS} characters", param="item.output")
    return call_id, output


@dataclass
class FunctionCalls:
    """The edge's side of a connection's calls: their items, and which turn waits on response.create."""

    #: call id → (its item id, the turn it belongs to); open until its output or cancel.
    open: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: Call ids the gateway cancelled (an output for one is refused here, as the gateway would).
    cancelled: set[str] = field(default_factory=set)
    #: Turn id → calls of its round still to come from the gateway.
    to_come: dict[int, int] = field(default_factory=dict)
    #: The turn whose calls all have outputs: the next response.create continues it.
    answered_turn: int | None = None

    def called(self, call: ToolCall, item_id: str) -> bool:
        """Record a call; True once the last call of its round is in (the response is done)."""
        self.open[call.call_id] = (item_id, call.turn_id)
        left = self.to_come.get(call.turn_id, call.calls_in_round or 1) - 1
        self.to_come[call.turn_id] = left
        if left > 0:
            return False
        del self.to_come[call.turn_id]
        return True

    def output(self, call_id: str) -> int:
        """An output for ``call_id``: its turn; raises ProtocolError for one not open."""
        if call_id in self.cancelled:
            raise ProtocolError(
                f"call {call_id!r} was cancelled (the user interrupted, or its result came too late)",
                param="item.call_id",
            )
        if call_id not in self.open:
            raise ProtocolError(f"no open function call {call_id!r}", param="item.call_id")
        _, turn_id = self.open.pop(call_id)
        if not any(t == turn_id for _, t in self.open.values()):
            self.answered_turn = turn_id
        return turn_id

    def cancel(self, call_id: str) -> str | None:
        """The gateway cancelled a call: its item id if it was open."""
        self.cancelled.add(call_id)
        entry = self.open.pop(call_id, None)
        return entry[0] if entry is not None else None

    def take_answered_turn(self) -> int | None:
        turn, self.answered_turn = self.answered_turn, None
        return turn


def arguments_text(call: ToolCall) -> str:
    """The arguments as the GA events carry them (JSON text); checked to be JSON by the gateway."""
    json.loads(call.arguments_json or "{}")
    return call.arguments_json or "{}"
