"""Resources bounded per session and per client, against a real gateway (null engines behind it).

Each test is one hole a probe of the old gateway found: silent streams that held
every slot, an idle session that never closed, one client taking every slot,
and two-byte audio chunks that grew gateway memory with their count.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from tests.integration.null_mesh import null_mesh
from voxmesh.client import AsyncSession, Overloaded, TurnComplete, VoxmeshClientError
from voxmesh.client import messages as client_messages
from voxmesh.processes import ServiceProcess
from voxmesh.v1 import conversation_pb2, conversation_pb2_grpc


@pytest.fixture(scope="module")
def strict_gateway() -> Iterator[ServiceProcess]:
    with null_mesh(
        "--max-sessions=2",
        "--max-sessions-per-client=1",
        "--first-message-timeout-s=1",
        "--session-idle-timeout-s=3",
        "--max-input-messages-per-s=100",
    ) as gateway:
        yield gateway


async def typed_turn(session: AsyncSession) -> TurnComplete:
    await session.send_text("hello")
    async with asyncio.timeout(30):
        async for event in session.events():
            if isinstance(event, TurnComplete):
                return event
    raise AssertionError("the stream ended without a TurnComplete")


async def status_of(call: grpc.aio.StreamStreamCall) -> tuple[grpc.StatusCode, str]:
    try:
        async for _ in call:
            pass
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


async def test_silent_streams_hold_no_slot_and_are_closed(strict_gateway: ServiceProcess) -> None:
    """Two streams that never send their config: a real session still gets in, and both are cut."""
    async with grpc.aio.insecure_channel(strict_gateway.address) as channel:
        stub = conversation_pb2_grpc.ConversationStub(channel)
        silent = [stub.Converse(timeout=30) for _ in range(2)]
        await asyncio.sleep(0.3)  # both streams are open on the gateway now
        async with await AsyncSession.connect(strict_gateway.address) as session:
            assert (await typed_turn(session)).reply_text
        outcomes = await asyncio.gather(*(status_of(call) for call in silent))
    for code, details in outcomes:
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED, (code, details)
        assert "SessionConfig" in details


async def test_idle_session_is_closed(strict_gateway: ServiceProcess) -> None:
    async with await AsyncSession.connect(strict_gateway.address) as session:
        with pytest.raises(VoxmeshClientError) as ended:
            async with asyncio.timeout(30):
                async for _ in session.events():
                    pass
    assert ended.value.code == "DEADLINE_EXCEEDED"
    assert "session_idle_timeout_s" in str(ended.value)


async def test_one_client_cannot_take_every_slot(strict_gateway: ServiceProcess) -> None:
    """Per token: a second session of the same client is refused; another client gets in."""
    async with await AsyncSession.connect(strict_gateway.address, token="alice") as first:
        with pytest.raises(Overloaded) as refused:
            await AsyncSession.connect(strict_gateway.address, token="alice")
        assert "max_sessions_per_client" in str(refused.value)
        async with await AsyncSession.connect(strict_gateway.address, token="bob") as other:
            assert (await typed_turn(other)).reply_text
        assert (await typed_turn(first)).reply_text


async def two_byte_flood(count: int) -> AsyncIterator[conversation_pb2.ConverseRequest]:
    yield client_messages.config_request()
    chunk = conversation_pb2.ConverseRequest(audio=conversation_pb2.AudioChunk(pcm=b"\x01\x00"))
    for _ in range(count):
        yield chunk


async def test_absurd_message_rate_is_refused(strict_gateway: ServiceProcess) -> None:
    """A flood past the message rate is cut with RESOURCE_EXHAUSTED.

    The flooding client itself usually sees INTERNAL "Internal error from Core":
    grpc's asyncio client loses the server's status when the call ends while
    it is still writing (grpc/grpc#36066), so the gateway's log is read too.
    """
    async with grpc.aio.insecure_channel(strict_gateway.address) as channel:
        call = conversation_pb2_grpc.ConversationStub(channel).Converse(timeout=60)
        written = 0
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            async for request in two_byte_flood(20_000):
                await call.write(request)
                written += 1
        code = await call.code()
    assert code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INTERNAL), code
    assert written < 20_000, "the whole flood was taken"
    refusals = [
        line for line in strict_gateway.log_tail(200).splitlines() if "max_input_messages_per_s" in line
    ]
    assert refusals and '"status": "RESOURCE_EXHAUSTED"' in refusals[-1], refusals


# --- memory per session follows audio, not chunk count --------------------------------------


def rss_mib(svc: ServiceProcess) -> float:
    assert svc.process is not None
    for line in Path(f"/proc/{svc.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def unlimited_gateway() -> Iterator[ServiceProcess]:
    """No message-rate limit: only chunk joining stands between a flood and memory."""
    with null_mesh("--max-input-messages-per-s=0") as gateway:
        yield gateway


async def test_two_byte_chunks_do_not_grow_gateway_memory(unlimited_gateway: ServiceProcess) -> None:
    """100 000 two-byte chunks (6.25 s of audio): the old gateway kept an entry per chunk (~34 MiB)."""
    async with await AsyncSession.connect(unlimited_gateway.address) as session:
        chunk = conversation_pb2.ConverseRequest(audio=conversation_pb2.AudioChunk(pcm=b"\x01\x00"))
        queue = session._queue  # the SDK's own request queue: send_audio would join the chunks itself

        async def flood(count: int) -> None:
            for _ in range(count):
                await queue.put(chunk)

        await flood(5_000)  # warm up allocator and channels
        assert (await typed_turn(session)).reply_text  # answered after every chunk before it was read
        before = rss_mib(unlimited_gateway)
        await flood(100_000)
        assert (await typed_turn(session)).reply_text
        after = rss_mib(unlimited_gateway)
    assert after - before < 8, f"gateway grew {after - before:.1f} MiB for 100 000 two-byte chunks"
    assert unlimited_gateway.exit_reason() is None


# --- a client's message budget: read more slowly, not refused -------------------------------


@pytest.fixture(scope="module")
def budget_gateway() -> Iterator[ServiceProcess]:
    """Sessions may send 20 messages/s (a 200-message burst); each client 15/s in all."""
    with null_mesh("--max-input-messages-per-s=20", "--max-input-messages-per-client-s=15") as gateway:
        yield gateway


async def test_a_client_past_its_budget_is_read_slowly_not_refused(budget_gateway: ServiceProcess) -> None:
    """230 messages at once: past the session's burst of 200, so without the client budget the
    session would be cut with RESOURCE_EXHAUSTED (test_absurd_message_rate_is_refused); read at
    the client's 15/s, below the session's 20/s, it never is, and its turn is answered.
    """
    async with grpc.aio.insecure_channel(budget_gateway.address) as channel:
        call = conversation_pb2_grpc.ConversationStub(channel).Converse(timeout=60)
        async for request in two_byte_flood(228):
            await call.write(request)
        await call.write(client_messages.text_request("still here"))
        await call.done_writing()
        events = [response.WhichOneof("event") async for response in call]
        assert await call.code() == grpc.StatusCode.OK, await call.details()
    assert events[0] == "session_started" and "turn_complete" in events, events
