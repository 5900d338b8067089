"""What the OpenAI Realtime edge adds to a turn, against talking gRPC to the gateway directly.

One mesh as real processes (vad webrtcvad, voxtral and orpheus ``null`` by
default so the figures are the transport's, not a model's; ``--engines cpu``
for echo/espeak), a gateway, and ``voxmesh serve realtime`` in front of it.
Turns alternate between a gRPC session (the Python SDK's ``AsyncSession``)
and a WebSocket session (a raw ``websockets`` client speaking the Realtime
events), so drift in the machine's load hits both alike. Per turn, on the
client's clock:

- typed: send the text → first reply audio (``AudioOut`` / ``response.output_audio.delta``);
- spoken: the utterance sent (the same espeak audio, at once) → first reply
  audio, with live silence sent in real time after it, as a microphone would.
  The VAD's hangover is in both figures alike; the end-of-speech events are
  not used as the start because the edge delays them as much as the audio.

The edge's added latency is the WebSocket figure minus the gRPC figure.

    .venv/bin/python bench/realtime_edge.py --turns 20 [--engines cpu] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from overhead import machine, pct  # bench/ is the script's directory
from websockets.asyncio.client import connect as ws_connect

from voxmesh.audio import float_to_pcm16
from voxmesh.client import AsyncSession, AudioOut, TurnComplete
from voxmesh.mesh import Mesh
from voxmesh.processes import ServiceProcess, free_port
from voxmesh.realtime.readiness import wait_edge_serving
from voxmesh.synthetic_speech import silence, speak

RATE = 24_000
CHUNK_MS = 20
ENGINES = {"null": {"voxtral": "null", "orpheus": "null"}, "cpu": {"voxtral": "echo", "orpheus": "espeak"}}


def utterance() -> np.ndarray:
    return np.concatenate(
        [silence(0.3, RATE), speak("what is the weather like today", RATE), silence(0.1, RATE)]
    )


async def live_silence(until: asyncio.Task[Any], send: Any) -> None:
    """A microphone after the utterance: 20 ms of silence in real time until the reply came."""
    quiet = np.zeros(RATE * CHUNK_MS // 1000, np.float32)
    t0, n = time.perf_counter(), 0
    while not until.done():
        await send(quiet)
        n += 1
        await asyncio.sleep(max(0.0, t0 + n * CHUNK_MS / 1000 - time.perf_counter()))


class GrpcClient:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.events = session.events()

    async def _first_audio(self, mark: dict[str, float]) -> None:
        async for event in self.events:
            now = time.perf_counter()
            if isinstance(event, AudioOut) and "first" not in mark:
                mark["first"] = now
            elif isinstance(event, TurnComplete):
                return

    async def typed(self, text: str) -> float:
        mark = {"start": time.perf_counter()}
        await self.session.send_text(text)
        await self._first_audio(mark)
        return 1000 * (mark["first"] - mark["start"])

    async def spoken(self, audio: np.ndarray) -> float:
        mark: dict[str, float] = {}
        reader = asyncio.create_task(self._first_audio(mark))
        await self.session.send_audio(audio)
        mark["start"] = time.perf_counter()
        await live_silence(reader, self.session.send_audio)
        await reader
        return 1000 * (mark["first"] - mark["start"])


class WsClient:
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def _append(self, audio: np.ndarray) -> None:
        pcm = float_to_pcm16(audio)
        await self.ws.send(
            json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()})
        )

    async def _first_audio(self, mark: dict[str, float]) -> None:
        async for message in self.ws:
            now = time.perf_counter()
            kind = json.loads(message)["type"]
            if kind == "response.output_audio.delta" and "first" not in mark:
                mark["first"] = now
            elif kind == "response.done":
                return

    async def typed(self, text: str) -> float:
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        await self.ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
        mark = {"start": time.perf_counter()}
        await self.ws.send(json.dumps({"type": "response.create"}))
        await self._first_audio(mark)
        return 1000 * (mark["first"] - mark["start"])

    async def spoken(self, audio: np.ndarray) -> float:
        mark: dict[str, float] = {}
        reader = asyncio.create_task(self._first_audio(mark))
        await self._append(audio)
        mark["start"] = time.perf_counter()
        await live_silence(reader, self._append)
        await reader
        return 1000 * (mark["first"] - mark["start"])


async def measure(gateway: str, edge_url: str, turns: int) -> dict[str, Any]:
    speech = utterance()
    rows: dict[str, list[float]] = {"grpc_typed": [], "ws_typed": [], "grpc_spoken": [], "ws_spoken": []}
    async with (
        await AsyncSession.connect(gateway, sample_rate_hz=RATE) as session,
        ws_connect(edge_url) as ws,
    ):
        grpc_client, ws_client = GrpcClient(session), WsClient(ws)
        await anext(grpc_client.events)  # SessionStarted
        json.loads(await ws.recv())  # session.created
        for i in range(turns + 2):  # two warm-up turns each, not recorded
            g = await grpc_client.typed(f"hello number {i}")
            w = await ws_client.typed(f"hello number {i}")
            if i >= 2:
                rows["grpc_typed"].append(g)
                rows["ws_typed"].append(w)
        for i in range(turns + 1):
            g = await grpc_client.spoken(speech)
            w = await ws_client.spoken(speech)
            if i >= 1:
                rows["grpc_spoken"].append(g)
                rows["ws_spoken"].append(w)
    out: dict[str, Any] = {name: pct(values) for name, values in rows.items()}
    for kind in ("typed", "spoken"):
        added = [w - g for g, w in zip(rows[f"grpc_{kind}"], rows[f"ws_{kind}"], strict=True)]
        out[f"edge_added_{kind}"] = {
            "p50_difference": round(out[f"ws_{kind}"]["p50"] - out[f"grpc_{kind}"]["p50"], 3),
            "p95_difference": round(out[f"ws_{kind}"]["p95"] - out[f"grpc_{kind}"]["p95"], 3),
            "paired": pct(added),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--engines", choices=sorted(ENGINES), default="null")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    mesh = Mesh.build(ENGINES[args.engines])
    edge = ServiceProcess(
        "realtime", free_port(), ["--metrics-port", "-1", "--gateway", mesh.gateway.address]
    )
    mesh.start(120)
    try:
        edge.start()
        wait_edge_serving(edge)
        results = asyncio.run(measure(mesh.gateway.address, f"ws://{edge.address}/v1/realtime", args.turns))
    finally:
        edge.stop()
        mesh.stop()
    report = {"machine": machine(), "engines": args.engines, "turns": args.turns, "results": results}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
