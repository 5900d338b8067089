"""``voxmesh up --profile cpu`` serves the OpenAI Realtime edge as its fifth process, supervised like the rest.

The official ``openai`` SDK holds a typed turn through the edge ``voxmesh up``
started; the edge, killed with -9, is restarted on the same port and answers
again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import urllib.request

import numpy as np
from openai import AsyncOpenAI

from tests.integration.test_realtime_edge import RATE_HZ, reply_audio, until
from tests.integration.test_up_supervision import UpProcess, _free_port_block
from voxmesh.exit_status import ExitStatus
from voxmesh.processes import check_health
from voxmesh.realtime.readiness import edge_ready


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return bytes(reply.read())


async def typed_turn(address: str, text: str) -> tuple[str, bytes]:
    """The reply transcript and audio of one typed turn through the edge at ``address``."""
    client = AsyncOpenAI(api_key="sk-unused", websocket_base_url=f"ws://{address}/v1")
    async with client.realtime.connect(model="voxmesh") as conn:
        created = await conn.recv()
        assert created.type == "session.created", created
        await conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        )
        await conn.response.create()
        events = await until(conn, "response.done")
    done = events[-1].response
    assert done.status == "completed", done
    return done.output[0].content[0].transcript, reply_audio(events)


async def test_up_serves_v1_realtime_and_restarts_a_killed_edge() -> None:
    base = _free_port_block(5)
    up = UpProcess("--profile", "cpu", "--base-port", str(base), "--no-metrics")
    try:
        up.wait_for("voxmesh is up")
        edge = up.wait_for(r"^\s+realtime\s+ws://(\S+)/v1/realtime .* pid (\d+)")
        address, pid = edge.group(1), int(edge.group(2))
        assert address == f"127.0.0.1:{base + 4}"
        up.wait_for(rf"Open http://{address}/ for the browser page")

        transcript, audio = await typed_turn(address, "hello there")
        assert transcript.startswith("You said:") and "hello there" in transcript.lower()
        assert len(audio) > RATE_HZ and np.abs(np.frombuffer(audio, "<i2")).max() > 1000
        assert b"<html" in (await asyncio.to_thread(fetch, f"http://{address}/")).lower()

        os.kill(pid, signal.SIGKILL)
        restarted = await asyncio.to_thread(up.wait_for, r"realtime restarted \(pid (\d+)\)")
        assert int(restarted.group(1)) != pid
        while not edge_ready(address):
            assert up.process.poll() is None, "\n".join(up.lines)
            await asyncio.sleep(0.2)
        transcript, _ = await typed_turn(address, "are you back")
        assert "are you back" in transcript.lower()
    finally:
        if up.process.poll() is None:
            up.process.send_signal(signal.SIGINT)
    assert up.process.wait(60) == ExitStatus.OK, "\n".join(up.lines)
    output = "\n".join(up.lines)
    # The edge (a client of the gateway) stops first.
    assert output.index("stopping realtime") < output.index("stopping gateway"), output


def test_up_with_the_edge_port_taken_says_how_to_move_it() -> None:
    base = _free_port_block(5)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 4))
        taken.listen()
        up = UpProcess("--profile", "cpu", "--base-port", str(base), "--no-metrics")
        assert up.process.wait(180) == ExitStatus.BAD_SETUP, "\n".join(up.lines)
    output = "\n".join(up.lines)
    assert f"voxmesh serve realtime: cannot listen on 127.0.0.1:{base + 4}" in output, output
    assert "--realtime-port N moves the Realtime edge, --no-realtime leaves it out" in output
    assert check_health(f"127.0.0.1:{base}") == "UNREACHABLE"  # the gateway it had started is stopped
