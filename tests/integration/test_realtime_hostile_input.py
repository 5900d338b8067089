"""Hostile input at the Realtime edge, property-tested over real WebSockets.

Random frames (not JSON, JSON of any shape, events of every known type with
random fields, random audio) go to one edge in front of the CPU mesh. After
each, a marker event (an unknown type with a known event_id) must come back
as an ``error`` naming it: every answer in between is a JSON event with a
type, no answer is an ``error`` of type ``server_error``, and the socket stays
open. Afterwards the edge still answers a typed turn, and its process is alive.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect as ws_connect

from tests.integration.realtime_edge import EdgeMesh, edge_mesh
from voxmesh.processes import ServiceProcess, free_port
from voxmesh.realtime.readiness import wait_edge_serving

EXAMPLES = settings(
    max_examples=int(os.environ.get("VOXMESH_HYPOTHESIS_EXAMPLES", "40")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CLIENT_TYPES = [
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.truncate",
    "conversation.item.delete",
    "response.create",
    "response.cancel",
    "output_audio_buffer.clear",
]
MARKER = json.dumps({"type": "voxmesh.marker", "event_id": "evt_marker"})

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
audio_b64 = st.binary(max_size=2000).map(lambda b: base64.b64encode(b).decode()) | st.text(max_size=40)
session_fields = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["realtime", "transcription", "x"]) | json_values,
        "instructions": st.text(max_size=50) | json_values,
        "output_modalities": st.sampled_from([["audio"], ["text"], []]) | json_values,
        "audio": st.fixed_dictionaries(
            {},
            optional={
                "input": st.fixed_dictionaries(
                    {},
                    optional={
                        "format": st.fixed_dictionaries(
                            {"type": st.sampled_from(["audio/pcm", "audio/pcmu", "audio/pcma", "x"])},
                            optional={"rate": st.integers(-1, 200_000) | json_values},
                        ),
                        "turn_detection": st.none()
                        | st.fixed_dictionaries(
                            {"type": st.sampled_from(["server_vad", "semantic_vad"])},
                            optional={
                                "threshold": json_values,
                                "silence_duration_ms": json_values,
                                "prefix_padding_ms": json_values,
                                "eagerness": st.sampled_from(["low", "auto", "x"]) | json_values,
                            },
                        ),
                    },
                ),
                "output": st.fixed_dictionaries(
                    {}, optional={"voice": st.text(max_size=12) | json_values, "speed": json_values}
                ),
            },
        )
        | json_values,
        "tools": json_values,
    },
)
events = st.one_of(
    st.builds(
        lambda t, f: {"type": t, **f},
        st.sampled_from(CLIENT_TYPES),
        st.dictionaries(st.text(max_size=12), json_values, max_size=4),
    ),
    st.builds(lambda a: {"type": "input_audio_buffer.append", "audio": a}, audio_b64),
    st.builds(lambda s: {"type": "session.update", "session": s}, session_fields),
    st.builds(
        lambda item: {"type": "conversation.item.create", "item": item},
        st.dictionaries(st.sampled_from(["type", "role", "content", "id"]), json_values, max_size=4),
    ),
    st.builds(
        lambda role, text: {
            "type": "conversation.item.create",
            "item": {"type": "message", "role": role, "content": [{"type": "input_text", "text": text}]},
        },
        st.sampled_from(["system", "assistant", "user", "developer"]) | json_values,
        st.text(max_size=30) | json_values,
    ),
    st.builds(
        lambda response: {"type": "response.create", "response": response},
        st.fixed_dictionaries(
            {}, optional={"instructions": st.text(max_size=30) | json_values, "metadata": json_values}
        ),
    ),
)
frames = st.one_of(
    events.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=200),
)


@pytest.fixture(scope="module")
def edge() -> Iterator[EdgeMesh]:
    with edge_mesh() as mesh:
        yield mesh


async def answers_until_marker(ws: Any) -> list[dict[str, Any]]:
    await ws.send(MARKER)
    out = []
    async with asyncio.timeout(30):
        async for message in ws:
            event = json.loads(message)
            out.append(event)
            if event["type"] == "error" and event["error"].get("event_id") == "evt_marker":
                return out
    raise AssertionError(f"the edge closed the socket: {out}")


@EXAMPLES
@given(batch=st.lists(frames, min_size=1, max_size=4))
def test_random_frames_get_events_and_the_socket_stays_open(edge: EdgeMesh, batch: list[str | bytes]) -> None:
    async def run() -> None:
        async with ws_connect(edge.url) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            for frame in batch:
                await ws.send(frame)
            answers = await answers_until_marker(ws)
            for event in answers:
                assert isinstance(event.get("type"), str)
                if event["type"] == "error":
                    error = event["error"]
                    assert error["type"] == "invalid_request_error", error
                    assert isinstance(error["message"], str) and error["message"]

    asyncio.run(run())


async def test_edge_still_answers_after_the_storm(edge: EdgeMesh) -> None:
    async with ws_connect(edge.url) as ws:
        await ws.recv()
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "still there"}]}
        await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
        await ws.send(json.dumps({"type": "response.create"}))
        async with asyncio.timeout(60):
            async for message in ws:
                event = json.loads(message)
                if event["type"] == "response.done":
                    assert event["response"]["status"] == "completed"
                    break
    assert edge.edge.exit_reason() is None


async def test_a_client_that_never_reads_is_cut_off_and_others_are_served(edge: EdgeMesh) -> None:
    """A second edge with a 1 s send timeout: the non-reader's socket is aborted, a reader still gets its turn."""
    impatient = ServiceProcess(
        "realtime",
        free_port(),
        ["--gateway", edge.gateway.address, "--metrics-port", "-1", "--send-timeout-s", "1"],
    )
    impatient.start()
    try:
        wait_edge_serving(impatient)
        url = f"ws://{impatient.address}/v1/realtime"
        long_text = " ".join(["this reply is long enough to fill every buffer on the way"] * 20)
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": long_text}]}
        # A tiny receive window, and max_queue=1 so the client library stops
        # reading the socket once one message waits: this client never reads.
        sock = socket.create_connection((impatient.host, impatient.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        async with ws_connect(url, sock=sock, max_queue=1) as stuck:
            await stuck.send(json.dumps({"type": "conversation.item.create", "item": item}))
            await stuck.send(json.dumps({"type": "response.create"}))
            async with ws_connect(url) as reader:
                await reader.recv()
                short = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
                await reader.send(json.dumps({"type": "conversation.item.create", "item": short}))
                await reader.send(json.dumps({"type": "response.create"}))
                async with asyncio.timeout(60):
                    async for message in reader:
                        if json.loads(message)["type"] == "response.done":
                            break
            for _ in range(300):
                if "client not reading" in impatient.log_tail(100):
                    break
                await asyncio.sleep(0.2)
            assert "client not reading" in impatient.log_tail(100)
        assert impatient.exit_reason() is None
    finally:
        impatient.stop()
