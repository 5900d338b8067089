"""The OpenAI Realtime edge in front of the CPU mesh, driven by clients no one here wrote.

The official ``openai`` SDK's realtime client holds a typed and a spoken turn;
raw ``websockets`` clients check the browser-style auth and bad input. One mesh
(vad webrtcvad, voxtral echo, orpheus espeak, gateway, edge) per module.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets
from openai import AsyncOpenAI
from websockets.asyncio.client import connect as ws_connect

from tests.integration.realtime_edge import EdgeMesh, edge_mesh
from tests.integration.test_mesh_playback_position import REPLY, TYPED, _middle_of_word
from voxmesh.audio import float_to_pcm16
from voxmesh.processes import ServiceProcess, free_port
from voxmesh.realtime.readiness import wait_edge_serving
from voxmesh.synthetic_speech import silence, speak

RATE_HZ = 24_000
TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def edge() -> Iterator[EdgeMesh]:
    with edge_mesh() as mesh:
        yield mesh


def spoken(text: str) -> bytes:
    """espeak-ng saying ``text`` then 1.5 s of silence, as PCM16 at 24 kHz (what OpenAI clients send)."""
    return float_to_pcm16(
        np.concatenate([silence(0.3, RATE_HZ), speak(text, RATE_HZ), silence(1.5, RATE_HZ)])
    )


async def until(conn: Any, last: str) -> list[Any]:
    """Events up to and including the first of type ``last``."""
    events = []
    async for event in conn:
        events.append(event)
        if event.type == last:
            return events
    raise AssertionError(f"the connection ended before {last}: {[e.type for e in events]}")


def reply_audio(events: list[Any]) -> bytes:
    return b"".join(base64.b64decode(e.delta) for e in events if e.type == "response.output_audio.delta")


def types(events: list[Any]) -> list[str]:
    return [e.type for e in events]


async def test_openai_sdk_typed_turn(edge: EdgeMesh) -> None:
    client = AsyncOpenAI(api_key="sk-unused", websocket_base_url=edge.ws_base)
    async with client.realtime.connect(model="voxmesh") as conn:
        created = await conn.recv()
        assert created.type == "session.created"
        engines = created.session.model_extra["voxmesh"]["engines"]
        assert engines["voxtral"]["engine"] == "echo" and engines["orpheus"]["engine"] == "espeak"
        assert created.session.audio.output.format.rate == RATE_HZ

        await conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hello there"}],
            }
        )
        await conn.response.create()
        events = await until(conn, "response.done")

    kinds = types(events)
    assert kinds[:2] == ["conversation.item.added", "conversation.item.done"]
    assert kinds.index("response.created") < kinds.index("response.output_audio.delta")
    deltas = "".join(e.delta for e in events if e.type == "response.output_audio_transcript.delta")
    done = events[-1].response
    assert done.status == "completed"
    assert "hello there" in deltas.lower()
    assert done.output[0].content[0].transcript == deltas
    audio = reply_audio(events)
    assert len(audio) % 2 == 0 and len(audio) > RATE_HZ  # > 0.5 s of PCM16
    assert np.abs(np.frombuffer(audio, "<i2")).max() > 1000
    latency = done.model_extra["voxmesh"]["latency_ms"]
    assert latency["response_latency_ms"] > 0 and latency["vad_decision_ms"] == 0


async def test_openai_sdk_spoken_turn(edge: EdgeMesh) -> None:
    client = AsyncOpenAI(api_key="sk-unused", websocket_base_url=edge.ws_base)
    async with client.realtime.connect(model="voxmesh") as conn:
        await conn.recv()
        await conn.session.update(
            session={
                "type": "realtime",
                "instructions": "Be brief.",
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": RATE_HZ},
                        "turn_detection": {"type": "server_vad", "threshold": 0.5},
                    },
                    "output": {"format": {"type": "audio/pcm", "rate": RATE_HZ}},
                },
            }
        )
        updated = await conn.recv()
        assert updated.type == "session.updated", updated
        assert updated.session.instructions == "Be brief."
        pcm = spoken("hello world")
        for start in range(0, len(pcm), 9600):  # 200 ms appends
            await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[start : start + 9600]).decode())
        events = await until(conn, "response.done")

    kinds = types(events)
    for kind in (
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "response.created",
        "conversation.item.input_audio_transcription.completed",
        "response.output_audio_transcript.delta",
        "response.output_audio.delta",
    ):
        assert kind in kinds, (kind, kinds)
    assert kinds.index("input_audio_buffer.speech_started") < kinds.index("input_audio_buffer.speech_stopped")
    started = next(e for e in events if e.type == "input_audio_buffer.speech_started")
    transcript = next(e for e in events if e.type == "conversation.item.input_audio_transcription.completed")
    assert transcript.item_id == started.item_id
    assert transcript.transcript.strip()
    assert events[-1].response.status == "completed"
    assert len(reply_audio(events)) > RATE_HZ


async def test_manual_commit_then_response_create(edge: EdgeMesh) -> None:
    """turn_detection null: the client commits and asks for the reply, as push-to-talk clients do."""
    client = AsyncOpenAI(api_key="sk-unused", websocket_base_url=edge.ws_base)
    async with client.realtime.connect(model="voxmesh") as conn:
        await conn.recv()
        await conn.session.update(session={"type": "realtime", "audio": {"input": {"turn_detection": None}}})
        assert (await conn.recv()).type == "session.updated"
        await conn.input_audio_buffer.append(audio=base64.b64encode(spoken("good morning")).decode())
        await conn.input_audio_buffer.commit()
        committed = await until(conn, "conversation.item.added")
        assert types(committed) == ["input_audio_buffer.committed", "conversation.item.added"]
        await conn.response.create()
        events = await until(conn, "response.done")
    assert "input_audio_buffer.speech_started" not in types(events)
    assert events[-1].response.status == "completed"
    assert len(reply_audio(events)) > 0


async def test_response_cancel_stops_the_reply(edge: EdgeMesh) -> None:
    client = AsyncOpenAI(api_key="sk-unused", websocket_base_url=edge.ws_base)
    # Long enough (~70 s of speech) that espeak is still speaking it when the
    # cancel arrives, even on a loaded machine: a reply already done cannot be
    # cancelled (OpenAI's rule too: response_cancel_not_active).
    long_text = " ".join(["this is a long sentence that takes a while to say"] * 20)
    async with client.realtime.connect(model="voxmesh") as conn:
        await conn.recv()
        await conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": long_text}]}
        )
        await conn.response.create()
        await until(conn, "response.output_audio.delta")
        await conn.response.cancel()
        events = await until(conn, "response.done")
        done = events[-1].response
        assert done.status == "cancelled"
        assert done.status_details.reason == "client_cancelled"
        # The session goes on: a second typed turn is answered.
        await conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "again"}]}
        )
        await conn.response.create()
        events = await until(conn, "response.done")
        assert events[-1].response.status == "completed"


async def raw_events(ws: Any, until_type: str) -> AsyncIterator[dict[str, Any]]:
    async for message in ws:
        event = json.loads(message)
        yield event
        if event["type"] == until_type:
            return


async def error_for(ws: Any, frame: str | bytes) -> dict[str, Any]:
    """Send one frame; the error event it caused."""
    await ws.send(frame)
    async with asyncio.timeout(30):
        async for event in raw_events(ws, "error"):
            if event["type"] == "error":
                return dict(event["error"])
    raise AssertionError("no error event")


@pytest.mark.parametrize(
    ("frame", "param", "code"),
    [
        ("{not json", None, "invalid_json"),
        ("[1, 2]", None, "invalid_json"),
        (b"\x00\x01", None, "invalid_json"),
        ('{"type": "voxmesh.teleport"}', "type", "invalid_value"),
        ('{"type": "conversation.item.delete", "item_id": "x"}', "item_id", "invalid_value"),
        ('{"type": "input_audio_buffer.append", "audio": "***"}', "audio", "invalid_value"),
        ('{"type": "input_audio_buffer.append", "audio": "AAAA"}', "audio", "invalid_value"),  # 3 bytes: odd
        (
            '{"type": "session.update", "session": {"tools": [{"type": "mcp", "server_label": "f"}]}}',
            "session.tools[0].type",
            "unsupported",
        ),
        (
            '{"type": "session.update", "session": {"output_modalities": ["text"]}}',
            "session.output_modalities",
            "unsupported",
        ),
        (
            '{"type": "session.update", "session": {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 96000}}}}}',
            "session.audio.input.format.rate",
            "invalid_value",
        ),
        (
            '{"type": "session.update", "session": {"audio": {"input": {"turn_detection": {"type": "vad_2030"}}}}}',
            "session.audio.input.turn_detection.type",
            "unsupported",
        ),
        ('{"type": "session.update", "session": {"colour": "blue"}}', "session.colour", "unknown_parameter"),
        (
            '{"type": "conversation.item.create", "item": {"type": "function_call_output", "output": "x"}}',
            "item.call_id",
            "invalid_value",
        ),
        (
            '{"type": "response.create", "response": {"tools": [{"type": "function", "name": "f"}]}}',
            "response.tools",
            "unsupported",
        ),
        (
            json.dumps({"type": "response.create", "response": {"instructions": "x" * 8_001}}),
            "response.instructions",
            "invalid_value",
        ),
        (
            '{"type": "response.create", "response": {"metadata": {"client_event_id": 7}}}',
            "response.metadata.client_event_id",
            "invalid_value",
        ),
        ('{"type": "response.cancel"}', None, "response_cancel_not_active"),
        ('{"type": "input_audio_buffer.commit"}', "type", "unsupported"),
    ],
)
async def test_bad_events_get_errors_naming_the_field(
    edge: EdgeMesh, frame: str, param: str, code: str
) -> None:
    async with ws_connect(edge.url) as ws:
        assert json.loads(await ws.recv())["type"] == "session.created"
        error = await error_for(ws, frame)
        assert error["param"] == param, error
        assert error["code"] == code, error
        assert error["type"] == "invalid_request_error"
        # The connection is still served.
        follow_up = await error_for(ws, '{"type": "nope", "event_id": "evt_1"}')
        assert follow_up["event_id"] == "evt_1"


async def test_odd_byte_count_and_bad_voice_are_named(edge: EdgeMesh) -> None:
    async with ws_connect(edge.url) as ws:
        await ws.recv()
        odd = base64.b64encode(b"\x01\x02\x03").decode()
        error = await error_for(ws, json.dumps({"type": "input_audio_buffer.append", "audio": odd}))
        assert error["param"] == "audio" and "odd" in error["message"]
        # A voice the gateway does not have falls back to its default, with a warning
        # naming the field and never an error (tests/integration/test_realtime_drop_in.py).
        # Once audio went to the gateway, the input format is fixed.
        await ws.send(
            json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(bytes(4800)).decode()})
        )
        update = {
            "type": "session.update",
            "session": {"audio": {"input": {"format": {"type": "audio/pcmu"}}}},
        }
        error = await error_for(ws, json.dumps(update))
        assert error["param"] == "session.audio.input.format", error


@pytest.fixture(scope="module")
def locked_edge() -> Iterator[EdgeMesh]:
    with edge_mesh(gateway_args=("--auth-token", TOKEN)) as mesh:
        yield mesh


async def test_token_is_forwarded_to_the_gateway(locked_edge: EdgeMesh) -> None:
    client = AsyncOpenAI(api_key=TOKEN, websocket_base_url=locked_edge.ws_base)
    async with client.realtime.connect(model="voxmesh") as conn:
        assert (await conn.recv()).type == "session.created"

    # Browsers cannot set headers: the key rides in a subprotocol, and "realtime" is selected.
    async with ws_connect(
        locked_edge.url, subprotocols=["realtime", f"openai-insecure-api-key.{TOKEN}"]
    ) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "realtime"
        assert json.loads(await ws.recv())["type"] == "session.created"

    async with ws_connect(locked_edge.url, additional_headers={"Authorization": "Bearer wrong"}) as ws:
        event = json.loads(await ws.recv())
        assert event["type"] == "error" and event["error"]["code"] == "invalid_api_key"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_readme_openai_sdk_example_runs_as_written(edge: EdgeMesh, tmp_path: Path) -> None:
    """The README's snippet, with only the edge's address changed."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    match = re.search(r"<!-- realtime-example[^\n]*-->\n```python\n(.*?)\n```", readme, re.DOTALL)
    assert match, "the README lost its OpenAI SDK example"
    code = match.group(1)
    assert "ws://127.0.0.1:8080/v1" in code
    code = code.replace("ws://127.0.0.1:8080/v1", edge.ws_base)
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert "You said: hello there" in run.stdout and "completed" in run.stdout, run.stdout
    assert "response_latency_ms" in run.stdout


async def test_truncate_is_accepted_for_a_reply_the_gateway_cut_while_it_played(edge: EdgeMesh) -> None:
    """A reply generated in full but still playing is cut by the next turn (the gateway's
    playout clock); truncating it afterwards is then true and answered, not refused.
    """
    client = AsyncOpenAI(api_key="sk-unused", websocket_base_url=edge.ws_base)
    long_text = " ".join(["this sentence keeps the speaker busy for a good while"] * 6)

    def item(text: str) -> dict[str, Any]:
        return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}

    async with client.realtime.connect(model="voxmesh") as conn:
        await conn.recv()
        await conn.conversation.item.create(item=item(long_text))
        await conn.response.create()
        first = (await until(conn, "response.done"))[-1].response
        assert first.status == "completed"  # generated in full, seconds of audio still to play
        await conn.conversation.item.create(item=item("next question"))
        await conn.response.create()
        assert (await until(conn, "response.done"))[-1].response.status == "completed"
        await conn.conversation.item.truncate(item_id=first.output[0].id, content_index=0, audio_end_ms=1500)
        answer = await conn.recv()
        assert answer.type == "conversation.item.truncated", answer
        assert answer.item_id == first.output[0].id and answer.audio_end_ms == 1500


async def test_truncate_keeps_in_history_the_reply_up_to_the_word_playing_at_audio_end_ms(
    edge: EdgeMesh,
) -> None:
    """What OpenAI clients do on a barge-in: the reply came faster than real time and still
    plays; the client stops it and truncates at its playback position. The gateway cuts the
    history there (PlaybackPosition), to the word, as ``voxmesh talk`` gets it over gRPC.
    """
    client = AsyncOpenAI(api_key="sk-unused", websocket_base_url=edge.ws_base)
    async with client.realtime.connect(model="voxmesh") as conn:
        await conn.recv()
        await conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": TYPED}]}
        )
        await conn.response.create()
        events = await until(conn, "response.done")
        done = events[-1].response
        assert done.status == "completed" and done.output[0].content[0].transcript == REPLY
        total_ms = 1000 * len(reply_audio(events)) / 2 / RATE_HZ
        words = REPLY.split()
        heard_ms = round(_middle_of_word(words, words.index("seven")) * total_ms)
        await conn.conversation.item.truncate(
            item_id=done.output[0].id, content_index=0, audio_end_ms=heard_ms
        )
        answer = await conn.recv()
    assert answer.type == "conversation.item.truncated", answer
    assert answer.item_id == done.output[0].id and answer.audio_end_ms == heard_ms
    kept = answer.model_extra["voxmesh"]
    assert kept["spoken_text"] == "You said: one two three four five six seven"
    assert kept["played_ms"] == heard_ms


async def test_truncate_of_an_older_reply_is_refused_naming_the_field(edge: EdgeMesh) -> None:
    """The gateway cuts only its latest turn: an earlier reply is in the history in full."""
    client = AsyncOpenAI(api_key="sk-unused", websocket_base_url=edge.ws_base)
    async with client.realtime.connect(model="voxmesh") as conn:
        await conn.recv()
        items = []
        for text in ("first question", "second question"):
            await conn.conversation.item.create(
                item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
            )
            await conn.response.create()
            events = await until(conn, "response.done")
            assert events[-1].response.status == "completed"
            items.append(events[-1].response.output[0].id)
            # Let it play out by the gateway's clock, or the next turn would cut it (a barge-in).
            await asyncio.sleep(len(reply_audio(events)) / 2 / RATE_HZ + 0.5)
        await conn.conversation.item.truncate(item_id=items[0], content_index=0, audio_end_ms=0)
        answer = await conn.recv()
    assert answer.type == "error" and answer.error.param == "audio_end_ms", answer


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return str(reply.read().decode())


async def test_metrics_count_connections_events_and_errors(edge: EdgeMesh) -> None:
    """A second edge with its /metrics port on: what one connection did shows up there."""
    metrics_port = free_port()
    second = ServiceProcess(
        "realtime", free_port(), ["--gateway", edge.gateway.address, "--metrics-port", str(metrics_port)]
    )
    second.start()
    try:
        wait_edge_serving(second)
        async with ws_connect(f"ws://{second.address}/v1/realtime") as ws:
            await ws.recv()
            await error_for(ws, '{"type": "voxmesh.teleport"}')
            await error_for(ws, '{"type": "input_audio_buffer.append", "audio": "AAAA"}')
            text = await asyncio.to_thread(scrape, f"http://127.0.0.1:{metrics_port}/metrics")
        assert "voxmesh_realtime_connections 1.0" in text
        assert 'voxmesh_realtime_client_events_total{type="unknown"} 1.0' in text
        assert 'voxmesh_realtime_client_events_total{type="input_audio_buffer.append"} 1.0' in text
        assert 'voxmesh_realtime_errors_total{code="invalid_value"} 2.0' in text
    finally:
        second.stop()
