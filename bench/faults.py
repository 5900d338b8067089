"""The fault matrix: kill each service mid-turn, restart it, time the recovery.

For vad, voxtral, orpheus and the gateway in turn, on a fresh CPU mesh (real
processes): a session is mid-turn when the service is SIGKILLed; the table
records what the client saw and how long it took to say so, then the service
is restarted and the same session (a new one, for the gateway) retries a turn
every half second until one completes. Recovery time runs from the restarted
process reporting SERVING to that turn's TurnComplete.

    .venv/bin/python bench/faults.py [--json bench/results/faults.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import numpy as np

from voxmesh.client import AsyncSession, AudioOut, Event, StageError, TurnComplete, VoxmeshClientError
from voxmesh.mesh import Mesh
from voxmesh.synthetic_speech import speak
from voxmesh.talk import send_paced

SENTENCE = "what is the weather like today"


class Client:
    """A session whose events are collected with their arrival times."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.events: list[tuple[float, Event]] = []
        self.failure: tuple[float, str] | None = None
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for event in self.session.events():
                self.events.append((time.perf_counter(), event))
        except VoxmeshClientError as exc:
            self.failure = (time.perf_counter(), f"stream ended: {type(exc).__name__}: {exc}")

    def first(self, kind: type, since: float) -> tuple[float, Any] | None:
        return next(((t, e) for t, e in self.events if t >= since and isinstance(e, kind)), None)

    async def wait(self, kind: type, since: float, timeout_s: float) -> tuple[float, Any] | None:
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline and not self.reader.done():
            if found := self.first(kind, since):
                return found
            await asyncio.sleep(0.02)
        return self.first(kind, since)


async def spoken_turn(client: Client) -> None:
    """Spoken at real-time pace, as a person would; audio that arrives while
    vad is still unreachable is dropped by the gateway, not buffered.
    """
    await send_paced(client.session, speak(SENTENCE), 16_000)
    await send_paced(client.session, np.zeros(16_000, np.float32), 16_000)


async def one_fault(victim: str) -> dict[str, Any]:
    mesh = Mesh.build({"voxtral": "echo", "orpheus": "espeak"})
    mesh.start(120)
    service = {s.name: s for s in mesh.services}[victim]
    row: dict[str, Any] = {"killed": victim}
    try:
        client = Client(await AsyncSession.connect(mesh.gateway.address))
        # Mid-turn: during the utterance (vad, voxtral), during the reply (orpheus, gateway).
        if victim in ("vad", "voxtral"):
            speech = speak(SENTENCE)
            await send_paced(client.session, speech[: len(speech) // 2], 16_000)
            killed_at = time.perf_counter()
            service.kill()
            await send_paced(client.session, speech[len(speech) // 2 :], 16_000)
            await client.session.send_audio(np.zeros(16_000, np.float32))
        else:
            await client.session.send_text("tell me a long story about the sea and the sky, please")
            await client.wait(AudioOut, 0, 30)
            killed_at = time.perf_counter()
            service.kill()
        seen = await client.wait(StageError, killed_at, 40)
        if seen:
            row["client_saw"] = f"Error stage={seen[1].stage} code={seen[1].code}"
            row["reported_after_ms"] = round(1000 * (seen[0] - killed_at), 1)
        elif client.failure:
            row["client_saw"] = client.failure[1]
            row["reported_after_ms"] = round(1000 * (client.failure[0] - killed_at), 1)
        else:
            row["client_saw"] = "nothing within 40 s"
        service.start().wait_serving(120)
        serving_at = time.perf_counter()
        if victim == "gateway":
            await client.session.close()
            client = Client(await AsyncSession.connect(mesh.gateway.address))
        recovered = None
        for _ in range(60):
            asked = time.perf_counter()
            if victim == "vad":
                await spoken_turn(client)
            else:
                await client.session.send_text("are you back")
            recovered = await client.wait(TurnComplete, asked, 5)
            if recovered:
                break
            await asyncio.sleep(0.5)
        row["recovered"] = recovered is not None
        if recovered:
            row["recovery_ms"] = round(1000 * (recovered[0] - serving_at), 1)
        row["session_survived"] = victim == "gateway" or client.failure is None
        await client.session.close()
    finally:
        mesh.stop()
    row["processes_left_running"] = sum(1 for s in mesh.services if s.exit_reason() is None)
    return row


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for victim in ("vad", "voxtral", "orpheus", "gateway"):
        print(f"killing {victim} mid-turn ...", flush=True)
        rows.append(await one_fault(victim))
        print(json.dumps(rows[-1]), flush=True)
    print("\n| killed | what the client saw | after (ms) | session survived | recovery after restart (ms) |")
    print("| --- | --- | ---: | --- | ---: |")
    for r in rows:
        print(
            f"| {r['killed']} | {r['client_saw']} | {r.get('reported_after_ms', '-')} | "
            f"{'yes' if r['session_survived'] else 'no'} | {r.get('recovery_ms', 'not recovered')} |"
        )
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", default="bench/results/faults.json")
    arguments = parser.parse_args()
    results = asyncio.run(main(arguments))
    with open(arguments.json, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {arguments.json}")
