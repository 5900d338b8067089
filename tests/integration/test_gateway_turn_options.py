"""The gRPC side of issue 21's drop-in: per-session turn detection, per-turn instructions,
a reply with no user input, added context and replaced instructions, on the real CPU mesh.

The echo loop-back answers "I was told: <instructions>" to a reply asked for
with no user input, which is how these tests see what reached voxtral.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
import numpy as np
import pytest

from tests.integration.conftest import Mesh
from tests.integration.test_gateway_bad_input import CONFIG, converse, still_serves
from tests.integration.test_mesh_turn_taking import SMART_TURN
from voxmesh.client import AsyncSession, InvalidRequest, ReplyText, SpeechEnded, TurnComplete
from voxmesh.synthetic_speech import silence, speak
from voxmesh.v1 import conversation_pb2

RATE_HZ = 16_000


async def reply_to(session: AsyncSession) -> str:
    text = ""
    async for event in session.events():
        if isinstance(event, ReplyText):
            text += event.delta
        elif isinstance(event, TurnComplete):
            return text
    raise AssertionError("the stream ended before TurnComplete")


async def test_a_reply_with_no_user_input_rides_on_its_own_instructions(mesh: Mesh) -> None:
    async with await AsyncSession.connect(mesh.address, system_prompt="You are Vox.") as session:
        await session.request_reply("Greet the user.")
        assert await reply_to(session) == "I was told: Greet the user."
        # Not kept: the next reply is on the session's instructions again.
        await session.request_reply()
        assert await reply_to(session) == "I was told: You are Vox."


async def test_context_is_added_and_instructions_replaced_for_every_later_turn(mesh: Mesh) -> None:
    async with await AsyncSession.connect(mesh.address, system_prompt="You are Vox.") as session:
        await session.add_context("The user's name is Ada.")
        await session.request_reply()
        assert await reply_to(session) == "I was told: You are Vox.\n\nThe user's name is Ada."
        await session.update_instructions("Speak like a pirate.")
        await session.send_text("hello there")
        assert await reply_to(session) == "You said: hello there."
        await session.request_reply()
        assert await reply_to(session) == "I was told: Speak like a pirate.\n\nThe user's name is Ada."


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (conversation_pb2.ConverseRequest(context=conversation_pb2.ContextText(text="  ")), "context.text"),
        (
            conversation_pb2.ConverseRequest(context=conversation_pb2.ContextText(text="x" * 8_001)),
            "context.text",
        ),
        (
            conversation_pb2.ConverseRequest(reply=conversation_pb2.ReplyRequest(instructions="x" * 8_001)),
            "reply.instructions",
        ),
        (
            conversation_pb2.ConverseRequest(
                text=conversation_pb2.TextInput(text="hi", instructions="x" * 8_001)
            ),
            "text.instructions",
        ),
        (
            conversation_pb2.ConverseRequest(
                instructions=conversation_pb2.InstructionsUpdate(system_prompt="x" * 8_001)
            ),
            "instructions.system_prompt",
        ),
    ],
)
async def test_bad_turn_input_is_invalid_argument_naming_the_field(
    mesh: Mesh, request_: conversation_pb2.ConverseRequest, field: str
) -> None:
    assert await converse(mesh.address, [CONFIG, request_]) == grpc.StatusCode.INVALID_ARGUMENT
    assert converse.details.startswith(field), converse.details  # type: ignore[attr-defined]
    await still_serves(mesh.address)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"silence_duration_ms": 50}, "config.turn_detection.silence_duration_ms"),
        ({"silence_duration_ms": 6_000}, "config.turn_detection.silence_duration_ms"),
        ({"prefix_padding_ms": 2_500}, "config.turn_detection.prefix_padding_ms"),
    ],
)
async def test_turn_detection_out_of_bounds_is_refused_naming_the_field(
    mesh: Mesh, options: dict[str, int], field: str
) -> None:
    with pytest.raises(InvalidRequest) as err:
        await AsyncSession.connect(mesh.address, **options)
    assert field in err.value.message


async def spoken_endpoint(address: str, **options: object) -> SpeechEnded:
    """One spoken turn; its SpeechEnded (offsets on the audio clock, not wall time)."""
    audio = np.concatenate([silence(0.3, RATE_HZ), speak("hello world", RATE_HZ), silence(2.5, RATE_HZ)])
    async with await AsyncSession.connect(address, sample_rate_hz=RATE_HZ, **options) as session:
        assert session.started is not None
        end_of_turn = session.started.vad.end_of_turn
        await session.send_audio(audio)
        await session.end_input()
        ended = [e async for e in session.events() if isinstance(e, SpeechEnded)]
    assert len(ended) == 1, ended
    spoken_endpoint.end_of_turn = end_of_turn  # type: ignore[attr-defined]
    return ended[0]


async def test_silence_duration_is_per_session(mesh: Mesh) -> None:
    short = await spoken_endpoint(mesh.address, silence_duration_ms=200)
    long = await spoken_endpoint(mesh.address, silence_duration_ms=1_500)
    # The endpoint is the session's hangover after the last voiced sample, on the audio clock.
    assert 200 <= short.endpoint_offset_ms - short.last_voiced_offset_ms < 500
    assert 1_500 <= long.endpoint_offset_ms - long.last_voiced_offset_ms < 1_800


async def test_semantic_end_of_turn_falls_back_to_silence_without_a_model_and_says_so(mesh: Mesh) -> None:
    await spoken_endpoint(mesh.address, end_of_turn="semantic", eagerness="high")
    assert spoken_endpoint.end_of_turn == "silence"  # type: ignore[attr-defined]


async def test_end_of_turn_mode_is_per_session_on_a_vad_with_the_model(
    start_mesh: Callable[..., Mesh],
) -> None:
    mesh = start_mesh(vad_args=SMART_TURN)
    low = await spoken_endpoint(mesh.address, end_of_turn="semantic", eagerness="low")
    assert spoken_endpoint.end_of_turn == "smart-turn"  # type: ignore[attr-defined]
    high = await spoken_endpoint(mesh.address, end_of_turn="semantic", eagerness="high")
    # The same audio, so the same verdict: a low eagerness waits longer after it than a high one.
    assert (
        low.endpoint_offset_ms - low.last_voiced_offset_ms
        > high.endpoint_offset_ms - high.last_voiced_offset_ms
    )
    silent = await spoken_endpoint(mesh.address, end_of_turn="silence", silence_duration_ms=300)
    assert spoken_endpoint.end_of_turn == "silence"  # type: ignore[attr-defined]
    assert 300 <= silent.endpoint_offset_ms - silent.last_voiced_offset_ms < 600
