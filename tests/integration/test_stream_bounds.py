"""Streams that cannot hold resources forever: voxtral's open turns per stream, and a
frozen client's gateway session (server keepalive). Real processes, null engines.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from tests.integration.null_mesh import start_null_mesh, stop_all
from voxmesh.client import AsyncSession, Overloaded, TurnComplete
from voxmesh.processes import ServiceProcess, free_port
from voxmesh.v1 import voxtral_pb2, voxtral_pb2_grpc


@pytest.fixture
def voxtral() -> Iterator[ServiceProcess]:
    svc = ServiceProcess("voxtral", free_port(), ["--engine=null", "--metrics-port=-1"]).start()
    try:
        svc.wait_serving(120)
        yield svc
    finally:
        svc.stop()


async def open_turns(count: int) -> AsyncIterator[voxtral_pb2.RespondRequest]:
    yield voxtral_pb2.RespondRequest(
        config=voxtral_pb2.RespondConfig(session_id="hostile", sample_rate_hz=16000)
    )
    for turn_id in range(1, count + 1):
        # A turn's audio with no end of turn: it stays open, holding its audio.
        yield voxtral_pb2.RespondRequest(
            audio=voxtral_pb2.UtteranceAudio(turn_id=turn_id, pcm=b"\x00\x01" * 160)
        )
    await asyncio.sleep(30)  # keep the stream open: the old voxtral just kept every turn


async def test_voxtral_refuses_a_fifth_open_turn_on_one_stream(voxtral: ServiceProcess) -> None:
    async with grpc.aio.insecure_channel(voxtral.address) as channel:
        # Exactly one turn past the cap (4), then no more writes: a write still in flight when
        # the server ends the stream turns its status into INTERNAL (grpc/grpc#36066).
        call = voxtral_pb2_grpc.VoxtralStub(channel).Respond(open_turns(5), timeout=20)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in call:
                pass
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value
    assert "max_open_turns" in (refused.value.details() or "")
    assert "audio.turn_id" in (refused.value.details() or "")
    assert voxtral.exit_reason() is None


# --- a frozen client's session is dropped by keepalive -----------------------------------------

_FROZEN_CLIENT = """
import asyncio, sys
from voxmesh.client import AsyncSession

async def main():
    session = await AsyncSession.connect(sys.argv[1])
    print("ready", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def typed_turn(address: str) -> TurnComplete:
    async with await AsyncSession.connect(address) as session:
        await session.send_text("hello")
        async with asyncio.timeout(30):
            async for event in session.events():
                if isinstance(event, TurnComplete):
                    return event
    raise AssertionError("no TurnComplete")


async def test_frozen_client_gives_its_slot_back() -> None:
    """A client frozen (SIGSTOP) mid-session: the gateway's keepalive drops it, and the slot frees.

    gRPC's default keepalive is two hours; with the old server options the only
    slot stayed taken for the whole wait below.
    """
    processes = start_null_mesh("--max-sessions=1", "--keepalive-time-s=1")
    gateway = processes[-1]
    client: asyncio.subprocess.Process | None = None
    try:
        client = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _FROZEN_CLIENT, gateway.address, stdout=asyncio.subprocess.PIPE
        )
        assert client.stdout is not None
        assert (await client.stdout.readline()).strip() == b"ready"
        os.kill(client.pid, signal.SIGSTOP)
        with pytest.raises(Overloaded):
            await typed_turn(gateway.address)  # the frozen client holds the only slot
        deadline = time.monotonic() + 40
        while True:
            try:
                assert (await typed_turn(gateway.address)).reply_text
                break
            except Overloaded:
                assert time.monotonic() < deadline, "the frozen client still holds the slot"
                await asyncio.sleep(0.5)
    finally:
        if client is not None:
            client.kill()  # SIGKILL ends a stopped process too
            await client.wait()
        stop_all(processes)
