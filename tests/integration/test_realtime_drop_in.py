"""What LiveKit Agents and Pipecat send the edge by default, through the official openai SDK.

Each frame here is what those frameworks' OpenAI Realtime clients send
(LiveKit ``livekit-plugins-openai`` 1.8.9, Pipecat 1.14.0; the LiveKit
session.update is its ``_create_session_update_event()`` as sent). None of
it may get an ``error`` (Pipecat ends its connection on any), and each must
do what OpenAI does with it. The frameworks' own clients drive the edge in
tests/frameworks/. The CPU mesh's voxtral is the echo loop-back: a reply
asked for with no user input repeats the instructions it was given, which is
how these tests see what reached voxtral.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from openai import AsyncOpenAI

from tests.integration.realtime_edge import EdgeMesh, edge_mesh
from tests.integration.test_mesh_turn_taking import SMART_TURN
from tests.integration.test_realtime_edge import reply_audio, spoken, types, until
from voxmesh.audio import float_to_pcm16
from voxmesh.client import AsyncSession, TurnComplete
from voxmesh.synthetic_speech import silence

#: LiveKit RealtimeModel()'s session.update, as it sends it (voice "marin", semantic_vad).
LIVEKIT_SESSION = {
    "type": "realtime",
    "audio": {
        "input": {
            "format": {"rate": 24000, "type": "audio/pcm"},
            "noise_reduction": None,
            "transcription": {"model": "gpt-4o-mini-transcribe"},
            "turn_detection": {
                "type": "semantic_vad",
                "create_response": True,
                "eagerness": "medium",
                "interrupt_response": True,
            },
        },
        "output": {"format": {"rate": 24000, "type": "audio/pcm"}, "speed": 1.0, "voice": "marin"},
    },
    "instructions": "You are a helpful assistant.",
    "max_output_tokens": "inf",
    "model": "gpt-realtime",
    "output_modalities": ["audio"],
    "tool_choice": "auto",
    "tracing": None,
}


LONG_INSTRUCTIONS = (
    "Answer as a sonnet of fourteen long and flowery lines, each one rhyming with the next, "
    "in the voice of an old sea captain who has seen every ocean twice."
)


@pytest.fixture(scope="module")
def edge() -> Iterator[EdgeMesh]:
    with edge_mesh() as mesh:
        yield mesh


@pytest.fixture(scope="module")
def smart_edge() -> Iterator[EdgeMesh]:
    with edge_mesh(vad_args=SMART_TURN) as mesh:
        yield mesh


def client(mesh: EdgeMesh) -> AsyncOpenAI:
    return AsyncOpenAI(api_key="sk-unused", websocket_base_url=mesh.ws_base)


async def update(conn: Any, session: dict[str, Any]) -> list[Any]:
    """Send a session.update; the events up to its session.updated (warnings included), never an error."""
    await conn.send({"type": "session.update", "session": session})
    events = await until(conn, "session.updated")
    assert "error" not in types(events), [e for e in events if e.type == "error"]
    return events


def warnings(events: list[Any]) -> dict[str, dict[str, Any]]:
    return {e.warning["code"]: e.warning for e in events if e.type == "voxmesh.warning"}


async def speak_turn(conn: Any, text: str) -> list[Any]:
    pcm = spoken(text)
    for start in range(0, len(pcm), 9600):
        await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[start : start + 9600]).decode())
    return await until(conn, "response.done")


async def test_livekit_default_session_update_is_served_and_semantic_vad_falls_back_said(
    edge: EdgeMesh,
) -> None:
    async with client(edge).realtime.connect(model="gpt-realtime") as conn:
        await conn.recv()
        events = await update(conn, LIVEKIT_SESSION)
        session = events[-1].session
        assert session.instructions == "You are a helpful assistant."
        assert session.audio.input.turn_detection.type == "semantic_vad"
        extra = session.model_extra["voxmesh"]
        # "marin" is OpenAI's: it maps onto Orpheus' tara; no end-of-turn model on this vad.
        assert extra["voice"] == "tara"
        assert extra["end_of_turn"] == "silence"
        said = warnings(events)["semantic_vad_unavailable"]
        assert said["param"] == "session.audio.input.turn_detection.type"
        # The fallback still ends turns: a spoken turn is answered.
        done = await speak_turn(conn, "hello world")
        assert done[-1].response.status == "completed"
        assert len(reply_audio(done)) > 0


async def test_semantic_vad_uses_the_end_of_turn_model_when_the_vad_has_one(smart_edge: EdgeMesh) -> None:
    turn = {"type": "semantic_vad", "eagerness": "high", "create_response": True, "interrupt_response": True}
    async with client(smart_edge).realtime.connect(model="gpt-realtime") as conn:
        await conn.recv()
        events = await update(conn, {"type": "realtime", "audio": {"input": {"turn_detection": turn}}})
        assert events[-1].session.model_extra["voxmesh"]["end_of_turn"] == "smart-turn"
        assert "semantic_vad_unavailable" not in warnings(events)
        done = await speak_turn(conn, "what time is it")
        assert "input_audio_buffer.speech_stopped" in types(done)
        assert done[-1].response.status == "completed"


async def test_server_vad_timings_are_per_session_and_clamped_with_a_warning(edge: EdgeMesh) -> None:
    async with client(edge).realtime.connect(model="gpt-realtime") as conn:
        await conn.recv()
        turn = {"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 800, "prefix_padding_ms": 300}
        events = await update(conn, {"audio": {"input": {"turn_detection": turn}}})
        shown = events[-1].session.audio.input.turn_detection
        assert (shown.silence_duration_ms, shown.prefix_padding_ms) == (800, 300)
        assert not warnings(events)
        done = await speak_turn(conn, "hello world")
        stopped = next(e for e in done if e.type == "input_audio_buffer.speech_stopped")
        started = next(e for e in done if e.type == "input_audio_buffer.speech_started")
        # The endpoint comes at least the asked-for silence after the speech (not the vad's 500 ms default).
        assert stopped.audio_end_ms - started.audio_start_ms > 800

    async with client(edge).realtime.connect(model="gpt-realtime") as conn:
        await conn.recv()
        turn = {"type": "server_vad", "silence_duration_ms": 10_000, "prefix_padding_ms": 0}
        events = await update(conn, {"audio": {"input": {"turn_detection": turn}}})
        shown = events[-1].session.audio.input.turn_detection
        assert (shown.silence_duration_ms, shown.prefix_padding_ms) == (5000, 1)
        assert warnings(events)["value_adjusted"]["param"].startswith("session.audio.input.turn_detection.")


async def test_unknown_voice_falls_back_with_a_warning_and_the_instructions_survive(edge: EdgeMesh) -> None:
    async with client(edge).realtime.connect(model="gpt-realtime") as conn:
        await conn.recv()
        events = await update(
            conn, {"instructions": "Answer in one word.", "audio": {"output": {"voice": "nova-unknown"}}}
        )
        said = warnings(events)["unknown_voice"]
        assert said["param"] == "session.audio.output.voice" and "nova-unknown" in said["message"]
        session = events[-1].session
        assert session.instructions == "Answer in one word."
        # The mesh's default voice (the orpheus service's --voice) speaks.
        assert session.audio.output.voice == session.model_extra["voxmesh"]["voice"] != "nova-unknown"
        # The instructions are in force: a reply asked for with no input repeats them.
        await conn.response.create()
        done = await until(conn, "response.done")
        assert done[-1].response.model_extra["voxmesh"]["transcript"] == ""
        assert "Answer in one word." in done[-1].response.output[0].content[0].transcript


async def test_generate_reply_greeting_echoes_metadata_and_rides_on_its_turn_only(edge: EdgeMesh) -> None:
    """LiveKit's session.generate_reply(instructions=...) before the user says anything."""
    async with client(edge).realtime.connect(model="gpt-realtime") as conn:
        await conn.recv()
        await update(conn, {"instructions": "You are Vox."})
        # LiveKit joins the session's instructions and the call's (OpenAI replaces the former).
        await conn.send(
            {
                "type": "response.create",
                "event_id": "response_create_abc",
                "response": {
                    "instructions": "You are Vox.\nGreet the user warmly.",
                    "metadata": {"client_event_id": "response_create_abc"},
                },
            }
        )
        greeting = await until(conn, "response.done")
        created = next(e for e in greeting if e.type == "response.created")
        assert created.response.metadata == {"client_event_id": "response_create_abc"}
        assert greeting[-1].response.metadata == {"client_event_id": "response_create_abc"}
        assert greeting[-1].response.status == "completed"
        heard = greeting[-1].response.output[0].content[0].transcript
        assert "Greet the user warmly" in heard
        assert len(reply_audio(greeting)) > 0

        # The next reply has the session's instructions again: the greeting's rode on its turn only.
        await conn.response.create(response={"metadata": {"client_event_id": "second"}})
        again = await until(conn, "response.done")
        assert again[-1].response.metadata == {"client_event_id": "second"}
        second = again[-1].response.output[0].content[0].transcript
        assert "You are Vox" in second and "Greet" not in second


async def test_system_items_are_context_and_instructions_change_mid_call(edge: EdgeMesh) -> None:
    """Pipecat's LLMMessagesAppendFrame: role "system" items (and "assistant" ones) mid-conversation."""
    async with client(edge).realtime.connect(model="gpt-realtime") as conn:
        await conn.recv()
        await update(conn, {"instructions": "Be brief."})
        typed = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "hello there"}],
        }
        await conn.conversation.item.create(item=typed)
        await conn.response.create()
        first = await until(conn, "response.done")
        assert first[-1].response.status == "completed"

        system = {
            "type": "message",
            "role": "system",
            "content": [{"type": "input_text", "text": "It is raining."}],
        }
        await conn.conversation.item.create(item=system)
        added = await until(conn, "conversation.item.done")
        assert "error" not in types(added)
        assert added[-1].item.role == "system"

        # Instructions change after the conversation started (LiveKit's update_instructions).
        await update(conn, {"type": "realtime", "instructions": "Speak like a pirate."})
        await conn.response.create()
        done = await until(conn, "response.done")
        told = done[-1].response.output[0].content[0].transcript
        assert "Speak like a pirate." in told and "It is raining." in told
        assert "Be brief" not in told


async def test_per_turn_instructions_reach_voxtral_for_that_turn_only(edge: EdgeMesh) -> None:
    """The gRPC side every client gets: TextInput.instructions and ReplyRequest, counted in prompt_tokens."""
    async with await AsyncSession.connect(edge.gateway.address, system_prompt="Be brief.") as session:
        prompts = []
        for instructions in ("", LONG_INSTRUCTIONS, ""):
            await session.send_text("hello there", instructions=instructions)
            async for event in session.events():
                if isinstance(event, TurnComplete):
                    prompts.append(event.prompt_tokens)
                    break
        # The echo counts words: the long instructions replace "Be brief." in turn 2's
        # prompt only; turn 3 has two exchanges of history more than turn 1 and would
        # hold the instructions again had the history kept them.
        assert prompts[1] - prompts[0] >= len(LONG_INSTRUCTIONS.split()) - len("Be brief.".split())
        assert prompts[0] < prompts[2] < prompts[1]


async def test_truncate_at_the_end_of_a_reply_cuts_nothing_and_is_no_error(edge: EdgeMesh) -> None:
    """Pipecat truncates at min(wall time, audio length) when the user speaks as a reply ends."""
    async with client(edge).realtime.connect(model="gpt-realtime") as conn:
        await conn.recv()
        typed = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "hello there"}],
        }
        await conn.conversation.item.create(item=typed)
        await conn.response.create()
        done = await until(conn, "response.done")
        audio_ms = int(len(reply_audio(done)) / 2 / 24)  # PCM16 at 24 kHz: whole ms, rounded down
        item_id = done[-1].response.output[0].id
        # Played out by the gateway's clock too: no barge-in left to make, nothing to cut.
        await asyncio.sleep(audio_ms / 1000 + 0.5)
        await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=audio_ms)
        answer = await conn.recv()
        assert answer.type == "conversation.item.truncated", answer
        assert answer.item_id == item_id and answer.audio_end_ms == audio_ms


async def test_a_turn_with_no_words_is_a_warning_and_an_incomplete_response_not_an_error(
    edge: EdgeMesh,
) -> None:
    """A cough or a tone taken for speech: nothing to answer, and nothing the client did wrong."""
    tone = np.concatenate([silence(0.3, 24_000), 0.5 * np.sin(2 * np.pi * 440 * np.arange(24_000) / 24_000)])
    pcm = float_to_pcm16(np.concatenate([tone.astype(np.float32), silence(1.5, 24_000)]))
    async with client(edge).realtime.connect(model="gpt-realtime") as conn:
        await conn.recv()
        for start in range(0, len(pcm), 9600):
            await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[start : start + 9600]).decode())
        events = await until(conn, "response.done")
        assert "error" not in types(events), [e for e in events if e.type == "error"]
        assert [e.warning["code"] for e in events if e.type == "voxmesh.warning"] == ["no_speech"]
        assert events[-1].response.status == "incomplete"
        assert events[-1].response.status_details.reason == "no_speech"
        # The conversation goes on: speech is answered.
        done = await speak_turn(conn, "hello world")
        assert done[-1].response.status == "completed"
