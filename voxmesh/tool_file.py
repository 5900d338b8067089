"""``voxmesh talk --tools FILE``: the tools to declare, and how their calls are answered.

The file is JSON: a list of OpenAI function tools, or an object with
``"tools"`` (that list) and ``"results"`` (tool name → the output to answer
its calls with; any JSON value, sent as JSON text unless it is a string). A
call to a tool with no result in the file is asked on the terminal.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxmesh.client import Tool, ToolCall


@dataclass(frozen=True)
class ToolFile:
    tools: list[Tool]
    results: dict[str, Any] = field(default_factory=dict)

    async def answer(self, call: ToolCall) -> Any:
        """The output for ``call``: the file's result for its tool, else typed on the terminal."""
        if call.name in self.results:
            return self.results[call.name]
        return await asyncio.to_thread(input, f"result of {call.name}({call.arguments_json}): ")


def load_tool_file(path: str) -> ToolFile:
    """Read FILE; raises ValueError naming what is wrong with it."""
    document = json.loads(Path(path).read_text())
    tools, results = (
        (document, {}) if isinstance(document, list) else (document.get("tools"), document.get("results", {}))
    )
    if not isinstance(tools, list) or not isinstance(results, dict):
        raise ValueError(f'{path}: a list of tools, or {{"tools": [...], "results": {{...}}}}')
    try:
        return ToolFile([Tool.from_openai(t) for t in tools], results)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: each tool needs a name (OpenAI's function-tool form): {exc}") from exc
