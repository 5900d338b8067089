"""Clients that open a session and vanish at once (connect-and-vanish loops) leave nothing
behind on the stages: every stage stream the gateway opened for them is closed.

A client that cancelled while the gateway was writing SessionStarted used to leak its
three stage streams for good (the teardown sat after that write); over a minute of such
loops the leaked streams filled orpheus and honest sessions were refused.
"""

from __future__ import annotations

import asyncio
import random
import re
import urllib.request
from collections.abc import Iterator

import grpc
import pytest

from tests.integration.null_mesh import null_mesh
from voxmesh.client import messages
from voxmesh.processes import ServiceProcess, free_port
from voxmesh.v1 import conversation_pb2, conversation_pb2_grpc


def sessions_in_use(metrics_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    found = re.search(r'^voxmesh_active_sessions\{service="\w+"\} (\S+)$', text, re.MULTILINE)
    assert found, "voxmesh_active_sessions not exported"
    return float(found[1])


@pytest.fixture
def mesh() -> Iterator[tuple[ServiceProcess, dict[str, int]]]:
    """A gateway over null-engine stages whose session gauges are scraped."""
    metrics = {name: free_port() for name in ("vad", "voxtral", "orpheus")}
    with null_mesh(stage_metrics=metrics) as gateway:
        yield gateway, metrics


async def connect_and_vanish(address: str, rounds: int, rng: random.Random) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = conversation_pb2_grpc.ConversationStub(channel)
        for _ in range(rounds):

            async def config_then_wait() -> object:
                yield messages.config_request()
                await asyncio.sleep(3600)

            call = stub.Converse(config_then_wait())
            # Cancelled anywhere from before admission to after SessionStarted.
            await asyncio.sleep(rng.uniform(0.0, 0.06))
            call.cancel()
            await asyncio.sleep(0.01)


async def test_connect_and_vanish_loops_leave_no_stage_stream_open(
    mesh: tuple[ServiceProcess, dict[str, int]],
) -> None:
    gateway, metrics = mesh
    rng = random.Random(7)
    await asyncio.gather(*(connect_and_vanish(gateway.address, 50, rng) for _ in range(16)))
    in_use: dict[str, float] = {}
    for _ in range(100):
        in_use = {name: sessions_in_use(port) for name, port in metrics.items()}
        if not any(in_use.values()):
            break
        await asyncio.sleep(0.1)
    assert in_use == {"vad": 0, "voxtral": 0, "orpheus": 0}
    # And the gateway still serves a whole session.
    async with grpc.aio.insecure_channel(gateway.address) as channel:
        call = conversation_pb2_grpc.ConversationStub(channel).Converse(iter([messages.config_request()]))
        first = await call.read()
        assert isinstance(first, conversation_pb2.ConverseResponse) and first.HasField("session_started")
        call.cancel()
