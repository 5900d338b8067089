"""Every malformed client stream ends with INVALID_ARGUMENT naming the field,
and the gateway goes on serving.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from tests.integration.conftest import Mesh
from voxmesh.client import AsyncSession, SessionStarted, TurnComplete
from voxmesh.v1 import conversation_pb2, conversation_pb2_grpc

CONFIG = conversation_pb2.ConverseRequest(config=conversation_pb2.SessionConfig(input_sample_rate_hz=16_000))


def audio(pcm: bytes) -> conversation_pb2.ConverseRequest:
    return conversation_pb2.ConverseRequest(audio=conversation_pb2.AudioChunk(pcm=pcm))


def key_press(digits: str) -> conversation_pb2.ConverseRequest:
    return conversation_pb2.ConverseRequest(key_press=conversation_pb2.KeyPress(digits=digits))


def config(**fields: int) -> conversation_pb2.ConverseRequest:
    return conversation_pb2.ConverseRequest(config=conversation_pb2.SessionConfig(**fields))  # type: ignore[arg-type]


async def converse(address: str, requests: list[object], raw: bool = False) -> grpc.StatusCode:
    """Send ``requests`` (messages, or raw bytes when ``raw``), drain the answers, return the status."""
    async with grpc.aio.insecure_channel(address) as channel:
        if raw:
            method = channel.stream_stream(
                "/voxmesh.v1.Conversation/Converse",
                request_serializer=lambda b: b,
                response_deserializer=conversation_pb2.ConverseResponse.FromString,
            )
        else:
            method = conversation_pb2_grpc.ConversationStub(channel).Converse

        async def gen() -> AsyncIterator[object]:
            for r in requests:
                yield r

        call = method(gen(), timeout=20)
        try:
            async for _ in call:
                pass
        except grpc.aio.AioRpcError as exc:
            converse.details = exc.details()  # type: ignore[attr-defined]
            return exc.code()
        converse.details = ""  # type: ignore[attr-defined]
        return grpc.StatusCode.OK


async def still_serves(address: str) -> None:
    async with await AsyncSession.connect(address) as session:
        await session.send_text("are you still there")
        await session.end_input()
        events = [e async for e in session.events()]
    assert any(isinstance(e, TurnComplete) for e in events)


# A varint of -1 for SessionConfig.input_sample_rate_hz (field 1): what a
# client in another language sends for a negative rate.
NEGATIVE_RATE = b"\x0a\x0b" + b"\x08" + b"\xff" * 9 + b"\x01"


@pytest.mark.parametrize(
    ("requests", "field", "raw"),
    [
        ([audio(b"\x00\x00")], "config", False),
        ([CONFIG, CONFIG], "config", False),
        ([config(input_sample_rate_hz=0)], "config.input_sample_rate_hz", False),
        ([NEGATIVE_RATE], "config.input_sample_rate_hz", True),
        ([config(input_sample_rate_hz=1)], "config.input_sample_rate_hz", False),
        ([config(input_sample_rate_hz=10_000_000)], "config.input_sample_rate_hz", False),
        ([config(input_sample_rate_hz=16_000, input_encoding=5)], "config.input_encoding", False),
        ([CONFIG, audio(b"\x00\x01\x02")], "audio.pcm", False),
        ([CONFIG, audio(b"\x00" * (300 * 1024))], "audio.pcm", False),
        ([CONFIG, conversation_pb2.ConverseRequest()], "request", False),
        (
            [CONFIG, conversation_pb2.ConverseRequest(text=conversation_pb2.TextInput(text="  "))],
            "text.text",
            False,
        ),
        ([config(input_sample_rate_hz=16_000, voice="no-such-voice")], "voice", False),
        ([CONFIG, key_press("5x")], "key_press.digits", False),
        ([CONFIG, key_press("")], "key_press.digits", False),
        ([CONFIG, key_press("#" * 33)], "key_press.digits", False),
    ],
    ids=[
        "audio-before-config",
        "second-config",
        "rate-0",
        "rate-negative",
        "rate-1Hz",
        "rate-10MHz",
        "unsupported-encoding",
        "odd-pcm-bytes",
        "oversize-chunk",
        "empty-message",
        "empty-text",
        "unknown-voice",
        "bad-key",
        "no-keys",
        "too-many-keys",
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field(
    mesh: Mesh, requests: list[object], field: str, raw: bool
) -> None:
    code = await converse(mesh.address, requests, raw=raw)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in converse.details, converse.details  # type: ignore[attr-defined]
    await still_serves(mesh.address)


async def test_empty_stream_ends_ok(mesh: Mesh) -> None:
    assert await converse(mesh.address, []) == grpc.StatusCode.OK
    await still_serves(mesh.address)


async def test_client_that_vanishes_mid_turn_leaves_nothing_behind(mesh: Mesh) -> None:
    from voxmesh.synthetic_speech import speak
    from voxmesh.talk import send_paced

    session = await AsyncSession.connect(mesh.address)
    await send_paced(session, speak("please tell me about the weather today"), 16_000, realtime=False)
    await session.send_text("and tell me a long story about the sea and the sky")
    await asyncio.sleep(0.3)
    await session.close()  # gone, mid-reply, without a goodbye
    await asyncio.sleep(0.5)
    await still_serves(mesh.address)


async def test_too_many_sessions_is_resource_exhausted(start_mesh) -> None:  # type: ignore[no-untyped-def]
    mesh = start_mesh(gateway_args=("--max-sessions", "1"))
    async with await AsyncSession.connect(mesh.address) as holder:
        events = holder.events()
        assert isinstance(await anext(events), SessionStarted)  # the slot is taken
        code = await converse(mesh.address, [CONFIG])
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, converse.details  # type: ignore[attr-defined]
        assert "max_sessions" in converse.details  # type: ignore[attr-defined]
        await holder.send_text("are you still there")
        await holder.end_input()
        assert any([isinstance(e, TurnComplete) async for e in events])
    await still_serves(mesh.address)
