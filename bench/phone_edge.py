"""Voice-to-voice over the phone edge (Twilio Media Streams, µ-law 8 kHz) against gRPC, and barge-in to ``clear``.

One mesh as real processes (vad webrtcvad; voxtral echo and orpheus espeak
with ``--engines cpu``, the default, or ``null`` for the transport alone), a
gateway and ``voxmesh serve telephony`` in front of it. One phone call and one
gRPC session (the SDK's ``AsyncSession`` at 16 kHz, as an app would) stay open;
turns alternate between them, the same espeak sentence each time (rendered
at 8 kHz for the phone, 16 kHz for gRPC), so drift in the machine's load hits
both alike. Both microphones run in real time: 20 ms frames, silence between
utterances, as Twilio streams a call.

- voice-to-voice (client clock): the last voiced frame of the utterance sent →
  the first reply audio received (``media`` / ``AudioOut``). The VAD's hangover
  is in all. A third session sends the phone's 8 kHz audio over gRPC (PCM16,
  8 kHz both ways), which separates what the edge adds from what 8 kHz costs.
- barge-in → clear (cpu engines): while a long reply plays, the caller talks
  over it; the first voiced frame sent → ``clear`` received. The gateway waits
  for ``--barge-in-min-speech-ms`` (350) of voiced audio before it calls it a
  barge-in (a cough is not one), so that is in the figure.
- key press → clear: ``dtmf`` sent during a reply → ``clear`` received (the
  edge and gateway path alone).

    .venv/bin/python bench/phone_edge.py --turns 10 [--engines null] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from overhead import machine, pct  # bench/ is the script's directory
from websockets.asyncio.client import connect as ws_connect

from voxmesh.audio import float_to_pcm16
from voxmesh.client import AsyncSession, AudioOut, TurnComplete
from voxmesh.g711 import ulaw_encode
from voxmesh.mesh import Mesh
from voxmesh.processes import free_port
from voxmesh.synthetic_speech import speak

ENGINES = {"null": {"voxtral": "null", "orpheus": "null"}, "cpu": {"voxtral": "echo", "orpheus": "espeak"}}
SENTENCE = "what is the weather like today"
LONG_SENTENCE = "one two three four five six seven eight nine ten eleven twelve"
FRAME_S = 0.02


def pcm(text: str, rate_hz: int) -> np.ndarray:
    return np.frombuffer(float_to_pcm16(speak(text, rate_hz)), dtype="<i2")


class Microphone:
    """20 ms frames in real time: queued speech, else silence; stamps when the last queued frame went out."""

    def __init__(self, rate_hz: int, send: Any) -> None:
        self.frame = int(rate_hz * FRAME_S)
        self._send = send
        self._frames: deque[np.ndarray] = deque()
        self.first_sent = self.last_sent = 0.0
        self._pending_first = False
        self._silence = np.zeros(self.frame, dtype=np.int16)

    def say(self, samples: np.ndarray) -> None:
        self._frames.extend(samples[i : i + self.frame] for i in range(0, len(samples), self.frame))
        self._pending_first = True

    @property
    def talking(self) -> bool:
        return bool(self._frames)

    async def run(self) -> None:
        t0, n = time.perf_counter(), 0
        while True:
            frame = self._frames.popleft() if self._frames else self._silence
            await self._send(frame)
            now = time.perf_counter()
            if frame is not self._silence:
                if self._pending_first:
                    self.first_sent, self._pending_first = now, False
                self.last_sent = now
            n += 1
            await asyncio.sleep(max(0.0, t0 + n * FRAME_S - time.perf_counter()))


class Phone:
    """The Twilio side of one call: media in real time, marks echoed at once, what came back stamped."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.sid = "MZ" + "0" * 32
        self.mic = Microphone(8000, self._media)
        self.media: list[float] = []
        self.clears: list[float] = []

    async def start(self) -> None:
        await self.ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        start = {
            "streamSid": self.sid,
            "callSid": "CA" + "0" * 32,
            "tracks": ["inbound"],
            "customParameters": {},
        }
        start["mediaFormat"] = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
        await self.ws.send(json.dumps({"event": "start", "start": start, "streamSid": self.sid}))

    async def _media(self, frame: np.ndarray) -> None:
        payload = base64.b64encode(ulaw_encode(frame).tobytes()).decode()
        await self.ws.send(
            json.dumps({"event": "media", "streamSid": self.sid, "media": {"payload": payload}})
        )

    async def press(self, digit: str) -> None:
        await self.ws.send(json.dumps({"event": "dtmf", "streamSid": self.sid, "dtmf": {"digit": digit}}))

    async def receive(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            now = time.perf_counter()
            if message["event"] == "media":
                self.media.append(now)
            elif message["event"] == "clear":
                self.clears.append(now)
            elif message["event"] == "mark":  # played at once: the gateway's estimate and ours agree
                await self.ws.send(
                    json.dumps({"event": "mark", "streamSid": self.sid, "mark": message["mark"]})
                )

    def first_media_after(self, t: float) -> float | None:
        return next((m for m in self.media if m > t), None)


class GrpcSide:
    """A gRPC session with a live microphone at its rate: one spoken turn at a time."""

    def __init__(self, session: AsyncSession, rate_hz: int) -> None:
        self.session = session
        self.first: list[float] = []
        self.done = asyncio.Event()
        self.mic = Microphone(rate_hz, session.send_audio)
        #: The gateway's own figures of each turn (TurnComplete.latency), ms.
        self.vad_decision_ms: list[float] = []
        self.gateway_v2v_ms: list[float] = []

    async def events(self) -> None:
        async for event in self.session.events():
            if isinstance(event, AudioOut):
                self.first.append(time.perf_counter())
            elif isinstance(event, TurnComplete):
                self.vad_decision_ms.append(event.latency.vad_decision_ms)
                self.gateway_v2v_ms.append(event.latency.voice_to_voice_ms)
                self.done.set()

    async def turn(self, speech: np.ndarray) -> float:
        """Voice-to-voice of one spoken turn, s."""
        self.done.clear()
        self.mic.say(speech)
        await until(lambda: not self.mic.talking)
        end = self.mic.last_sent
        await until(lambda: any(t > end for t in self.first))
        await asyncio.wait_for(self.done.wait(), 60)
        return next(t for t in self.first if t > end) - end


async def until(predicate: Any, timeout_s: float = 60.0) -> None:
    deadline = time.perf_counter() + timeout_s
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("no reply")
        await asyncio.sleep(0.005)


async def quiet_for(phone: Phone, seconds: float) -> None:
    """Until the phone has had no media for ``seconds`` (the reply is over)."""
    await until(lambda: not phone.media or time.perf_counter() - phone.media[-1] > seconds)


async def measure(gateway: str, url: str, turns: int, barge_ins: int) -> dict[str, Any]:
    rows: dict[str, list[float]] = {
        "grpc_v2v": [],
        "grpc_8k_v2v": [],
        "phone_v2v": [],
        "barge_in_to_clear": [],
        "dtmf_to_clear": [],
    }
    async with (
        await AsyncSession.connect(gateway, sample_rate_hz=16000) as session,
        await AsyncSession.connect(gateway, sample_rate_hz=8000, output_sample_rate_hz=8000) as session_8k,
        ws_connect(url) as ws,
    ):
        phone = Phone(ws)
        await phone.start()
        grpc, grpc_8k = GrpcSide(session, 16000), GrpcSide(session_8k, 8000)
        tasks = [asyncio.create_task(t) for t in (phone.receive(), phone.mic.run())]
        for side in (grpc, grpc_8k):
            tasks += [asyncio.create_task(side.mic.run()), asyncio.create_task(side.events())]
        try:
            phone_speech, grpc_speech = pcm(SENTENCE, 8000), pcm(SENTENCE, 16000)
            await asyncio.sleep(0.5)
            for i in range(turns + 1):  # the first turn of each warms up, not recorded
                g = await grpc.turn(grpc_speech)
                g8 = await grpc_8k.turn(phone_speech)
                phone.mic.say(phone_speech)
                await until(lambda: not phone.mic.talking)
                await until(lambda: phone.first_media_after(phone.mic.last_sent) is not None)
                p = phone.first_media_after(phone.mic.last_sent) - phone.mic.last_sent  # type: ignore[operator]
                await quiet_for(phone, 1.0)
                if i:
                    rows["grpc_v2v"].append(1000 * g)
                    rows["grpc_8k_v2v"].append(1000 * g8)
                    rows["phone_v2v"].append(1000 * p)
            for _ in range(barge_ins):
                phone.mic.say(pcm(LONG_SENTENCE, 8000))
                await until(lambda: not phone.mic.talking)
                asked = phone.mic.last_sent
                await until(lambda asked=asked: phone.first_media_after(asked) is not None)
                await asyncio.sleep(0.6)  # the reply is playing
                phone.mic.say(pcm("no stop that is not what I asked", 8000))
                await until(lambda asked=asked: phone.mic.first_sent > asked)
                talked = phone.mic.first_sent
                await until(lambda talked=talked: any(c > talked for c in phone.clears), 30)
                rows["barge_in_to_clear"].append(
                    1000 * (next(c for c in phone.clears if c > talked) - talked)
                )
                await until(lambda: not phone.mic.talking)
                await quiet_for(phone, 1.5)
                phone.mic.say(pcm(LONG_SENTENCE, 8000))
                await until(lambda: not phone.mic.talking)
                asked = phone.mic.last_sent
                await until(lambda asked=asked: phone.first_media_after(asked) is not None)
                await asyncio.sleep(0.6)
                pressed = time.perf_counter()
                await phone.press("5")
                await until(lambda pressed=pressed: any(c > pressed for c in phone.clears), 30)
                rows["dtmf_to_clear"].append(1000 * (next(c for c in phone.clears if c > pressed) - pressed))
                await quiet_for(phone, 1.5)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    out: dict[str, Any] = {name: pct(values) for name, values in rows.items()}
    # Where 8 kHz costs: the vad's decision (endpoint - t_end) as the gateway measured it, per rate.
    for name, side in (("grpc", grpc), ("grpc_8k", grpc_8k)):
        out[f"{name}_gateway_vad_decision_ms"] = pct(side.vad_decision_ms[1:])
        out[f"{name}_gateway_v2v_ms"] = pct(side.gateway_v2v_ms[1:])
    added = [p - g for g, p in zip(rows["grpc_v2v"], rows["phone_v2v"], strict=True)]
    out["phone_added_v2v"] = pct(added)
    # The same 8 kHz audio over gRPC: what the edge itself adds, apart from the 8 kHz resampling.
    added_8k = [p - g for g, p in zip(rows["grpc_8k_v2v"], rows["phone_v2v"], strict=True)]
    out["phone_added_v2v_vs_grpc_8k"] = pct(added_8k)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument(
        "--barge-ins", type=int, default=5, help="barge-in and key-press rounds (cpu engines)"
    )
    parser.add_argument("--engines", choices=sorted(ENGINES), default="cpu")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    mesh = Mesh.build(ENGINES[args.engines], phone_port=free_port())
    mesh.start(120)
    assert mesh.phone is not None
    try:
        barge_ins = args.barge_ins if args.engines == "cpu" else 0  # null replies are 100 ms: nothing to cut
        results = asyncio.run(
            measure(mesh.gateway.address, f"ws://{mesh.phone.address}/twilio", args.turns, barge_ins)
        )
    finally:
        mesh.stop()
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    report = {
        "machine": machine(),
        "load_average": load,
        "engines": args.engines,
        "turns": args.turns,
        "results": results,
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
