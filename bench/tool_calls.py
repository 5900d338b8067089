"""Tool-call timings on the CPU mesh (vad webrtcvad, voxtral echo, orpheus espeak, gateway).

Two figures per call, on one machine's wall clock:

(a) **call → client**: from the moment voxtral had the call whole (the echo's
    stand-in writes it in one step, so its last argument token is that moment;
    voxtral logs it as ``parsed_epoch_s``) to the ``ToolCall`` event read by
    the client. It crosses voxtral → gateway (the JSON Schema check of the
    arguments, the policy) → client. A spoken turn's call is made in the
    tentative reply, in the user's pause, and held until the endpoint: there
    the figure includes that hold, and ``endpoint_to_call_ms`` (SpeechEnded →
    ToolCall at the client) is the hop after it.
(b) **result → first audio**: from the client sending its ``ToolResult`` to
    the first ``AudioOut`` of the reply that goes on from it: gateway →
    voxtral (the reply written from the result) → gateway → orpheus (the
    first phrase synthesised) → client.

Typed turns ("what is the weather in paris", so the echo calls ``weather``)
one after another on one session, each answered at once; then spoken turns
(Piper speech, real-time pace) for (a) on the spoken path.

    .venv/bin/python -m bench.tool_calls --turns 30 --spoken 5 [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.overhead import machine, pct
from voxmesh.client import AsyncSession, AudioOut, SpeechEnded, ToolCall, TurnComplete
from voxmesh.mesh import Mesh

REPO = Path(__file__).resolve().parent.parent

ASK = "what is the weather in paris"
WEATHER = {
    "type": "function",
    "name": "weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def parsed_epochs(mesh: Mesh) -> list[float]:
    """Voxtral's ``tool calls made`` log lines, in order: when each call was whole."""
    out = []
    for line in mesh.stages[1].log_tail(100_000).splitlines():
        if '"tool calls made"' in line:
            out.append(float(json.loads(line)["parsed_epoch_s"]))
    return out


async def run_turns(address: str, turns: int, spoken: int) -> dict[str, Any]:
    call_seen: list[float] = []
    endpoint_to_call: list[float] = []
    result_to_audio: list[float] = []
    kinds: list[str] = []
    async with await AsyncSession.connect(address, tools=[WEATHER]) as session:
        events = session.events()

        async def one(kind: str) -> None:
            sent_result = None
            endpoint = None
            async for event in events:
                if isinstance(event, SpeechEnded):
                    endpoint = time.perf_counter()
                elif isinstance(event, ToolCall):
                    call_seen.append(time.time())
                    if endpoint is not None:
                        endpoint_to_call.append(1000 * (time.perf_counter() - endpoint))
                    kinds.append(kind)
                    sent_result = time.perf_counter()
                    await session.send_tool_result(event.call_id, {"sky": "sunny", "celsius": 21})
                elif isinstance(event, AudioOut) and sent_result is not None:
                    result_to_audio.append(1000 * (time.perf_counter() - sent_result))
                    sent_result = None
                elif isinstance(event, TurnComplete):
                    return

        for _ in range(turns):
            await session.send_text(ASK)
            await one("typed")
        if spoken:
            from tests.piper_speech import piper_speak

            audio = np.concatenate(
                [piper_speak("What is the weather in Paris?"), np.zeros(24_000, np.float32)]
            )
            for _ in range(spoken):
                # Events are read while the microphone streams (read after it, they would wait).
                reader = asyncio.create_task(one("spoken"))
                for start in range(0, len(audio), 320):
                    await session.send_audio(audio[start : start + 320])
                    await asyncio.sleep(0.02)
                await reader
        await session.end_input()
        async for _ in events:
            pass
    return {
        "call_seen": call_seen,
        "result_to_audio_ms": result_to_audio,
        "kinds": kinds,
        "endpoint_to_call_ms": endpoint_to_call,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=30, help="typed turns")
    parser.add_argument("--spoken", type=int, default=5, help="spoken turns (Piper, real-time pace)")
    parser.add_argument("--json", default=str(REPO / "bench" / "results" / "tool_calls.json"))
    args = parser.parse_args()
    info = machine()
    print(f"machine: {info['cpu_model']}, {info['logical_cores']} logical cores, Python {info['python']}")
    mesh = Mesh.build({"voxtral": "echo", "orpheus": "espeak"})
    mesh.start(120)
    try:
        measured = asyncio.run(run_turns(mesh.gateway.address, args.turns, args.spoken))
        parsed = parsed_epochs(mesh)
    finally:
        mesh.stop()
    if len(parsed) != len(measured["call_seen"]):
        raise SystemExit(
            f"{len(parsed)} calls logged by voxtral, {len(measured['call_seen'])} seen by the client"
        )
    hop = [1000 * (seen - made) for seen, made in zip(measured["call_seen"], parsed, strict=True)]
    by_kind = {
        kind: {
            "call_to_client_ms": pct([h for h, k in zip(hop, measured["kinds"], strict=True) if k == kind]),
            "result_to_first_audio_ms": pct(
                [
                    r
                    for r, k in zip(measured["result_to_audio_ms"], measured["kinds"], strict=True)
                    if k == kind
                ]
            ),
        }
        for kind in ("typed", "spoken")
    }
    # A spoken call is made in the tentative reply (in the user's pause) and held until the
    # endpoint: from the endpoint (SpeechEnded at the client) it is the hop alone.
    by_kind["spoken"]["endpoint_to_call_ms"] = pct(measured["endpoint_to_call_ms"])
    report = {"machine": info, "engines": {"voxtral": "echo", "orpheus": "espeak"}, **by_kind}
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    for kind, figures in by_kind.items():
        for name, value in figures.items():
            print(f"{kind}: {name} {value}")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
