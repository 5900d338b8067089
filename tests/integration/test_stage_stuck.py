"""Every failure heard: a vad that stops reading its stream becomes an ``Error`` event
naming vad, and the session goes on. The gateway and the other stages are real
processes; the stuck vad is a real gRPC server in this test that announces its
engine and then never reads another request (a hung process that still answers
keepalive pings, which no ping-based check can see).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import grpc
import numpy as np
import pytest

from voxmesh.client import AsyncSession, StageError, TurnComplete
from voxmesh.processes import ServiceProcess, free_port
from voxmesh.v1 import common_pb2, vad_pb2, vad_pb2_grpc


class StuckVad(vad_pb2_grpc.VoiceActivityServicer):
    async def Detect(
        self, request_iterator: AsyncIterator[vad_pb2.DetectRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[vad_pb2.DetectResponse]:
        await anext(aiter(request_iterator))
        yield vad_pb2.DetectResponse(engine=common_pb2.EngineInfo(engine="stuck", max_sessions=8))
        await asyncio.sleep(3600)  # never reads again


@pytest.fixture(scope="module")
def stages() -> Iterator[list[ServiceProcess]]:
    processes = [
        ServiceProcess("voxtral", free_port(), ["--engine=null", "--metrics-port=-1"]),
        ServiceProcess("orpheus", free_port(), ["--engine=null", "--metrics-port=-1"]),
    ]
    try:
        for svc in processes:
            svc.start()
        for svc in processes:
            svc.wait_serving(120)
        yield processes
    finally:
        for svc in reversed(processes):
            svc.stop()


async def test_vad_that_stops_reading_is_an_error_naming_vad(stages: list[ServiceProcess]) -> None:
    server = grpc.aio.server()
    vad_pb2_grpc.add_VoiceActivityServicer_to_server(StuckVad(), server)
    vad_port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    addresses = [f"--{svc.name}-addr={svc.address}" for svc in stages]
    gateway = ServiceProcess(
        "gateway", free_port(), [*addresses, f"--vad-addr=127.0.0.1:{vad_port}", "--metrics-port=-1"]
    )
    try:
        gateway.start()
        await asyncio.to_thread(gateway.wait_serving, 120)
        async with await AsyncSession.connect(gateway.address) as session:
            # 10 min of audio in 100 ms chunks, faster than real time: more than
            # gRPC's flow-control windows and the link's request queue hold.
            noise = (np.random.default_rng(0).standard_normal(16_000 * 600) * 0.01).astype(np.float32)
            for chunk in np.split(noise, 6000):
                await session.send_audio(chunk)
            errors: list[StageError] = []
            async with asyncio.timeout(60):
                async for event in session.events():
                    if isinstance(event, StageError):
                        errors.append(event)
                        break
            assert errors, "the stream ended without an Error"
            assert errors[0].stage == "vad"
            assert "vad" in errors[0].message
            # The session survives the stage: a typed turn does not need vad.
            await session.send_text("still there?")
            async with asyncio.timeout(30):
                async for event in session.events():
                    if isinstance(event, TurnComplete):
                        assert event.reply_text
                        break
        assert gateway.exit_reason() is None
    finally:
        gateway.stop()
        await server.stop(0)
