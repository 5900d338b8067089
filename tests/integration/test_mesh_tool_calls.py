"""Tool calls on the CPU mesh (webrtcvad, echo, espeak, gateway) as real processes.

The echo engine's stand-in rule (EngineInfo.tool_calls) calls a declared tool
whose name the transcript contains, with the transcript as its argument, and
after the results speaks them: so a spoken request runs the whole path —
ToolCall to the client, its ToolResult back, the reply going on from it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np

from tests.integration.conftest import Mesh
from tests.integration.tool_session import WEATHER, ToolSession, config
from tests.piper_speech import piper_speak
from voxmesh.synthetic_speech import silence
from voxmesh.v1 import common_pb2, conversation_pb2

RATE = 16_000
#: Piper's voice: pocketsphinx hears it word for word (espeak-ng's "weather" came out "whether").
ASK = "What is the weather in Paris?"


def request(text: str = ASK) -> np.ndarray:
    return np.concatenate([piper_speak(text, RATE), silence(1.0, RATE)])


def words(text: str) -> int:
    """The echo engine's token count of a text (words + 1)."""
    return len(text.split()) + 1


async def test_a_spoken_request_calls_the_tool_and_the_reply_speaks_its_result(mesh: Mesh) -> None:
    session = ToolSession(mesh.address, config())
    try:
        started = await session.wait_for("session_started")
        assert started.voxtral.tool_calls.startswith("stand-in:")  # the echo says it fakes them
        await session.speak(request())
        call = await session.wait_for("tool_call")
        transcript = (await session.wait_for("transcript", lambda t: t.is_final)).text
        assert call.name == "weather" and call.turn_id == 1
        assert json.loads(call.arguments_json) == {"city": transcript}
        # No reply audio before the result: the reply waits on the tool.
        assert not session.of("audio")
        session.result(call.call_id, output="sunny and 21 degrees")
        done = await session.wait_for("turn_complete")
        assert done.reply_text == "The weather tool says: sunny and 21 degrees."
        assert session.of("audio") and {a.turn_id for a in session.of("audio")} == {1}
        assert not session.of("error") and not session.of("tool_call_cancelled")

        # The history holds the call and its result: the next turn's prompt reads them. (Typed
        # while the reply still plays, the next turn would be a barge-in that cuts it short.)
        await asyncio.sleep(done.reply_audio_ms / 1000 + 0.5)
        session.send(text=conversation_pb2.TextInput(text="thank you"))
        second = await session.wait_for("turn_complete", lambda t: t.turn_id == 2)
        with_tools = (
            words(transcript)
            + words("")
            + words(f"weather {call.arguments_json}")  # the assistant's call (no words)
            + words("")
            + words("sunny and 21 degrees")  # its result
            + words(done.reply_text)
            + words("thank you")
        )
        assert second.prompt_tokens == with_tools
        assert await session.finished() == grpc.StatusCode.OK
    finally:
        await session.close()


async def test_a_barge_in_cancels_the_outstanding_call_and_its_late_result_is_refused(mesh: Mesh) -> None:
    session = ToolSession(mesh.address, config())
    try:
        await session.speak(request())
        call = await session.wait_for("tool_call")
        await session.speak(request("Stop, never mind."))  # speech while the call is outstanding
        cancelled = await session.wait_for("tool_call_cancelled")
        assert (cancelled.call_id, cancelled.turn_id, cancelled.reason) == (call.call_id, 1, "interrupted")
        session.result(call.call_id, output="sunny")  # too late
        refused = await session.wait_for("error", lambda e: e.code == "INVALID_ARGUMENT")
        assert refused.message.startswith("tool_result.call_id:") and "cancelled" in refused.message
        # The session goes on: the late result changed nothing and the next turn is answered.
        session.send(text=conversation_pb2.TextInput(text="hello there"))
        later = await session.wait_for("turn_complete", lambda t: t.reply_text == "You said: hello there.")
        # Nothing of the cancelled call is in the history: the prompt is the user's words and
        # the (empty) reply of turn 1, the words of turn 2 (a new call, cancelled by the typed
        # turn, or its reply), and the typed turn.
        assert "sunny" not in later.reply_text
        assert await session.finished() == grpc.StatusCode.OK
    finally:
        await session.close()


async def test_a_result_that_never_comes_times_out_and_the_reply_says_the_tool_failed(
    start_mesh: Callable[..., Mesh],
) -> None:
    mesh = start_mesh(gateway_args=("--tool-result-timeout-s", "1"))
    session = ToolSession(mesh.address, config())
    try:
        await session.speak(request())
        call = await session.wait_for("tool_call")
        cancelled = await session.wait_for("tool_call_cancelled")
        assert (cancelled.call_id, cancelled.reason) == (call.call_id, "timed_out")
        done = await session.wait_for("turn_complete")
        assert done.reply_text == "The weather tool failed: the tool did not answer within 1 s."
        assert await session.finished() == grpc.StatusCode.OK
    finally:
        await session.close()


async def test_results_wait_for_a_reply_request_when_the_session_says_so(mesh: Mesh) -> None:
    session = ToolSession(mesh.address, config(tools_wait_for_reply=True))
    try:
        session.send(text=conversation_pb2.TextInput(text="the weather in rome please"))
        call = await session.wait_for("tool_call")
        session.result(call.call_id, error="the forecast service is down")
        session.send(reply=conversation_pb2.ReplyRequest())
        done = await session.wait_for("turn_complete")
        assert done.turn_id == call.turn_id == 1  # the same turn went on, no new one
        assert done.reply_text == "The weather tool failed: the forecast service is down."
        assert await session.finished() == grpc.StatusCode.OK
    finally:
        await session.close()


async def test_bad_tool_results_are_refused_naming_the_field_and_the_session_goes_on(mesh: Mesh) -> None:
    session = ToolSession(mesh.address, config())
    try:
        session.send(text=conversation_pb2.TextInput(text="weather in oslo"))
        call = await session.wait_for("tool_call")
        session.result("no-such-call", output="x")
        session.result(call.call_id, output="x" * 20_000)
        errors = [
            await session.wait_for("error", lambda e, i=i: len(session.of("error")) > i) for i in range(2)
        ]
        messages = [e.message for e in session.of("error")][:2]
        assert all(e.code == "INVALID_ARGUMENT" and e.retryable for e in errors)
        assert messages[0].startswith("tool_result.call_id:") and messages[1].startswith(
            "tool_result.output:"
        )
        # Neither changed anything: the call is still open and its real result is taken.
        session.result(call.call_id, output="snow")
        done = await session.wait_for("turn_complete")
        assert done.reply_text == "The weather tool says: snow."
        session.result(call.call_id, output="again")  # answered already
        await session.wait_for("error", lambda e: "answered" in e.message)
        assert await session.finished() == grpc.StatusCode.OK
    finally:
        await session.close()


async def test_a_bad_tool_declaration_is_refused_naming_the_field(mesh: Mesh) -> None:
    cases = {
        "config.tools[0].parameters_json": common_pb2.Tool(
            name="t", parameters_json='{"type": "object", "properties": 3}'
        ),
        "config.tools[0].name": common_pb2.Tool(name="has space"),
        "config.tools[1].name": WEATHER,  # declared twice
        "config.tool_choice": None,
    }
    for field_name, tool in cases.items():
        tools = (
            (WEATHER, WEATHER) if field_name == "config.tools[1].name" else (tool,) if tool else (WEATHER,)
        )
        extra = {"tool_choice": "book_flight"} if tool is None else {}
        session = ToolSession(mesh.address, config(tools, **extra))
        try:
            assert await session.finished() == grpc.StatusCode.INVALID_ARGUMENT
            assert session.details.startswith(field_name), (field_name, session.details)
            assert not session.events  # refused before SessionStarted
        finally:
            await session.close()
    many = tuple(common_pb2.Tool(name=f"t{i}") for i in range(65))
    session = ToolSession(mesh.address, config(many))
    try:
        assert await session.finished() == grpc.StatusCode.INVALID_ARGUMENT
        assert session.details.startswith("config.tools")
    finally:
        await session.close()


async def test_the_async_sdk_exposes_calls_and_takes_results(mesh: Mesh) -> None:
    from voxmesh.client import AsyncSession, Tool, ToolCall, TurnComplete

    tool = Tool.from_openai(
        {"type": "function", "name": "weather", "parameters": json.loads(WEATHER.parameters_json)}
    )
    async with await AsyncSession.connect(mesh.address, tools=[tool], tool_choice="weather") as session:
        assert session.started is not None and session.started.voxtral.tool_calls.startswith("stand-in:")
        await session.send_text("tell me something")  # tool_choice names the tool: it is called anyway
        async for event in session.events():
            if isinstance(event, ToolCall):
                assert event.arguments == {"city": "tell me something"}
                await session.send_tool_result(event.call_id, {"sky": "clear"})
            elif isinstance(event, TurnComplete):
                assert event.reply_text == 'The weather tool says: {"sky": "clear"}.'
                await session.end_input()


def test_voxmesh_talk_with_a_tools_file(mesh: Mesh, tmp_path: Path) -> None:
    import soundfile as sf

    sf.write(tmp_path / "question.wav", request(), RATE)
    (tmp_path / "tools.json").write_text(
        json.dumps(
            {
                "tools": [
                    {"type": "function", "name": "weather", "parameters": json.loads(WEATHER.parameters_json)}
                ],
                "results": {"weather": {"sky": "sunny", "celsius": 21}},
            }
        )
    )
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "voxmesh"),
            "talk",
            "question.wav",
            "--tools",
            "tools.json",
            "--gateway",
            mesh.address,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert 'tool call:  weather({"city": "what is the weather in paris"})' in run.stdout, run.stdout
    assert 'reply:      The weather tool says: {"sky": "sunny", "celsius": 21}.' in run.stdout, run.stdout
