"""OpenAI Realtime GA function calling through the edge, driven by the official ``openai`` SDK.

The echo engine's stand-in rule calls a declared tool whose name the user's
words contain (EngineInfo.tool_calls); the round trip is the one GA clients
make: session.tools, a function_call item with its arguments events, a
function_call_output item, response.create, and the reply speaking the result.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from openai import AsyncOpenAI

from tests.integration.realtime_edge import EdgeMesh, edge_mesh
from tests.integration.test_realtime_edge import reply_audio, types, until

WEATHER = {
    "type": "function",
    "name": "weather",
    "description": "The weather forecast for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def edge() -> Iterator[EdgeMesh]:
    with edge_mesh() as mesh:
        yield mesh


async def ask(conn: Any, text: str) -> None:
    await conn.conversation.item.create(
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    )
    await conn.response.create()


async def test_the_openai_sdk_completes_a_function_call_round_trip(edge: EdgeMesh) -> None:
    client = AsyncOpenAI(api_key="sk-unused", websocket_base_url=edge.ws_base)
    async with client.realtime.connect(model="voxmesh") as conn:
        await conn.recv()  # session.created
        await conn.session.update(session={"type": "realtime", "tools": [WEATHER], "tool_choice": "auto"})
        updated = await until(conn, "session.updated")
        assert updated[-1].session.tools[0].name == "weather"

        await ask(conn, "what is the weather in rome")
        first = await until(conn, "response.done")
        kinds = types(first)
        added = next(e for e in first if e.type == "response.output_item.added")
        assert added.item.type == "function_call" and added.item.name == "weather"
        done_args = next(e for e in first if e.type == "response.function_call_arguments.done")
        deltas = "".join(e.delta for e in first if e.type == "response.function_call_arguments.delta")
        assert deltas == done_args.arguments
        assert json.loads(done_args.arguments) == {"city": "what is the weather in rome"}
        assert kinds.index("response.function_call_arguments.done") < kinds.index("response.output_item.done")
        response = first[-1].response
        assert response.status == "completed"
        (call_item,) = response.output
        assert call_item.type == "function_call" and call_item.call_id == done_args.call_id
        assert not reply_audio(first)  # nothing is spoken before the result

        await conn.conversation.item.create(
            item={
                "type": "function_call_output",
                "call_id": done_args.call_id,
                "output": json.dumps({"sky": "rain", "celsius": 12}),
            }
        )
        confirmed = await until(conn, "conversation.item.done")
        assert confirmed[-1].item.type == "function_call_output"
        await conn.response.create()
        second = await until(conn, "response.done")

    spoken = "".join(e.delta for e in second if e.type == "response.output_audio_transcript.delta")
    assert spoken == 'The weather tool says: {"sky": "rain", "celsius": 12}.'
    assert second[-1].response.status == "completed" and len(reply_audio(second)) > 10_000


async def test_an_output_for_an_unknown_call_is_an_error_naming_the_field(edge: EdgeMesh) -> None:
    client = AsyncOpenAI(api_key="sk-unused", websocket_base_url=edge.ws_base)
    async with client.realtime.connect(model="voxmesh") as conn:
        await conn.recv()
        await conn.conversation.item.create(
            item={"type": "function_call_output", "call_id": "nope", "output": "{}"}
        )
        (error,) = [e for e in await until(conn, "error")]
        assert error.error.param == "item.call_id"


async def test_mcp_tools_are_refused_naming_the_field(edge: EdgeMesh) -> None:
    client = AsyncOpenAI(api_key="sk-unused", websocket_base_url=edge.ws_base)
    async with client.realtime.connect(model="voxmesh") as conn:
        await conn.recv()
        await conn.session.update(
            session={
                "type": "realtime",
                "tools": [{"type": "mcp", "server_label": "x", "server_url": "http://x"}],
            }
        )
        error = (await until(conn, "error"))[-1]
        assert error.error.param == "session.tools[0].type"
