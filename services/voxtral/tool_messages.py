"""RespondConfig's tools and an Exchange's calls, protobuf → the voxtral side's own types.

The gateway checks the session's tools against JSON Schema before they get
here (gateway.tool_calls); this side only refuses what it cannot read at all.
"""

from __future__ import annotations

import json

from voxmesh.errors import InvalidArgument
from voxmesh.services.voxtral.tools import ToolCallOut, ToolOutcome, Tools, ToolSpec
from voxmesh.v1 import voxtral_pb2


def session_tools(config: voxtral_pb2.RespondConfig) -> Tools:
    specs = []
    for i, tool in enumerate(config.tools):
        try:
            parameters = json.loads(tool.parameters_json) if tool.parameters_json else {}
        except ValueError as exc:
            raise InvalidArgument(f"config.tools[{i}].parameters_json", f"not JSON: {exc}") from exc
        if not isinstance(parameters, dict):
            raise InvalidArgument(f"config.tools[{i}].parameters_json", "must be a JSON object")
        specs.append(ToolSpec(tool.name, tool.description, parameters))
    names = [s.name for s in specs]
    choice = config.tool_choice or "auto"
    if choice not in ("auto", "none", "required") and choice not in names:
        raise InvalidArgument(
            "config.tool_choice", f"{choice!r} is not auto, none, required or a declared tool"
        )
    return Tools(tuple(specs), choice)


def history_tools(exchange: voxtral_pb2.Exchange) -> list[ToolOutcome]:
    return [
        ToolOutcome(ToolCallOut(t.call_id, t.name, t.arguments_json or "{}"), t.result.output, t.result.error)
        for t in exchange.tool_calls
    ]
