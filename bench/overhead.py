"""What the mesh itself costs per turn, against the bare gRPC round-trip floor.

Two measurements in one run, on this machine:

(a) the full mesh as real processes with the ``null`` engines (voxtral answers
    at once, orpheus returns a burst of silence at once), driven through the
    gateway by typed turns (``send_text``) and spoken turns (espeak speech),
    one after the other on one session. Per turn: the gateway's TurnComplete
    latency fields and the client's own clock (typed: send → first AudioOut;
    spoken: SpeechEnded received → first AudioOut).
(b) a bare ``grpc.aio`` bidi echo server in a child process: the client sends
    640-byte messages (20 ms of 16 kHz PCM16) and the server answers each with
    a message of the size the gateway's AudioOut carries; ping-pong round trip
    p50/p95, with uvloop on and off (client and server alike).

A typed turn crosses six gRPC hops (client→gateway→voxtral→gateway→orpheus→
gateway→client), i.e. three round trips' worth of hops; the report divides the
mesh's per-turn latency by that floor.

    .venv/bin/python bench/overhead.py --turns 20 [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import psutil

from voxmesh.client import AsyncSession, AudioOut, SpeechEnded, StageError, TurnComplete
from voxmesh.mesh import Mesh
from voxmesh.processes import free_port
from voxmesh.synthetic_speech import silence, speak

REPO = Path(__file__).resolve().parent.parent

ECHO_METHOD = "/bench.Echo/Echo"
IN_BYTES = 640  # 20 ms of 16 kHz PCM16
LATENCY_FIELDS = (
    "vad_decision_ms",
    "voxtral_first_token_ms",
    "first_phrase_ms",
    "orpheus_first_audio_ms",
    "gateway_overhead_ms",
    "response_latency_ms",
    "voice_to_voice_ms",
)
TYPED_HOPS = 6
CHUNK_MS = 20
RATE = 16_000


def pct(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    p50, p95 = np.percentile(values, [50, 95])
    return {
        "p50": round(float(p50), 3),
        "p95": round(float(p95), 3),
        "mean": round(float(np.mean(values)), 3),
        "n": len(values),
    }


def machine() -> dict[str, Any]:
    model = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_model": model,
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "platform": platform.platform(),
    }


# --- (a) the mesh -------------------------------------------------------------------------------


async def mesh_turns(address: str, turns: int) -> dict[str, Any]:
    typed: list[dict[str, float]] = []
    spoken: list[dict[str, float]] = []
    audio_out_bytes: list[int] = []
    errors: list[str] = []
    utterance = np.concatenate([silence(0.3), speak("what is the weather like today"), silence(0.1)])
    chunk = RATE * CHUNK_MS // 1000
    quiet = np.zeros(chunk, np.float32)

    async with await AsyncSession.connect(address, sample_rate_hz=RATE) as session:
        events = session.events()

        async def until_complete(mark: dict[str, float], first_audio_from: str) -> None:
            async for event in events:
                now = time.perf_counter()
                if isinstance(event, SpeechEnded):
                    mark["speech_ended_at"] = now
                elif isinstance(event, AudioOut):
                    audio_out_bytes.append(len(event.pcm))
                    if "first_audio_at" not in mark:
                        mark["first_audio_at"] = now
                elif isinstance(event, StageError):
                    errors.append(f"{event.stage}: {event.code}: {event.message}")
                elif isinstance(event, TurnComplete):
                    result = {f: float(getattr(event.latency, f)) for f in LATENCY_FIELDS}
                    start = mark.get(first_audio_from)
                    if start is not None and "first_audio_at" in mark:
                        result["client_first_audio_ms"] = 1000 * (mark["first_audio_at"] - start)
                    mark["result"] = result  # type: ignore[assignment]
                    return

        # Session start (SessionStarted) before timing anything.
        await anext(events)
        for i in range(turns + 2):  # two warm-up turns, not recorded
            mark: dict[str, Any] = {"sent_at": time.perf_counter()}
            await session.send_text(f"hello number {i}")
            await until_complete(mark, "sent_at")
            if i >= 2:
                typed.append(mark["result"])
        for i in range(turns + 1):  # one warm-up turn
            mark = {}
            reader = asyncio.create_task(until_complete(mark, "speech_ended_at"))
            await session.send_audio(utterance)  # as fast as it goes: the clock is the audio's
            t0 = time.perf_counter()
            n = 0
            while not reader.done():  # then a live microphone: silence in real time until the reply
                await session.send_audio(quiet)
                n += 1
                await asyncio.sleep(max(0.0, t0 + n * CHUNK_MS / 1000 - time.perf_counter()))
            await reader
            if i >= 1:
                spoken.append(mark["result"])
        await session.end_input()
        with contextlib.suppress(Exception):
            async for _ in events:
                pass

    def summary(rows: list[dict[str, float]]) -> dict[str, Any]:
        keys = rows[0].keys() if rows else ()
        return {k: pct([r[k] for r in rows if k in r]) for k in keys}

    return {
        "typed": summary(typed),
        "spoken": summary(spoken),
        "audio_out_bytes_median": int(np.median(audio_out_bytes)) if audio_out_bytes else 0,
        "errors": errors,
    }


# --- (b) the bare echo --------------------------------------------------------------------------


def serve_echo(port: int, reply_bytes: int, use_uvloop: bool) -> None:
    """Child process: a bidi server answering each message with ``reply_bytes`` bytes."""
    reply = b"\x00" * reply_bytes

    async def echo(request_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        async for _ in request_iterator:
            yield reply

    async def main() -> None:
        server = grpc.aio.server()
        handler = grpc.stream_stream_rpc_method_handler(
            echo, request_deserializer=lambda b: b, response_serializer=lambda b: b
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler}),)
        )
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print("ready", flush=True)
        await server.wait_for_termination()

    run(main(), use_uvloop)


def run(coro: Any, use_uvloop: bool) -> Any:
    if use_uvloop:
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


async def echo_round_trips(port: int, messages: int) -> list[float]:
    request = b"\x01" * IN_BYTES
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def requests() -> Any:
        while (item := await queue.get()) is not None:
            yield item

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await channel.channel_ready()
        call = channel.stream_stream(
            ECHO_METHOD, request_serializer=lambda b: b, response_deserializer=lambda b: b
        )(requests())
        rtts: list[float] = []
        for i in range(messages + 50):  # 50 warm-up messages
            t0 = time.perf_counter()
            await queue.put(request)
            await call.read()
            if i >= 50:
                rtts.append(1000 * (time.perf_counter() - t0))
        await queue.put(None)
        await call.code()
    return rtts


def bare_echo(reply_bytes: int, messages: int, use_uvloop: bool) -> dict[str, Any]:
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-echo", str(port), "--reply-bytes", str(reply_bytes)]
        + (["--uvloop"] if use_uvloop else []),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        rtts = run(echo_round_trips(port, messages), use_uvloop)
    finally:
        child.terminate()
        child.wait(10)
    return {"in_bytes": IN_BYTES, "reply_bytes": reply_bytes, "round_trip_ms": pct(rtts)}


# --- report -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=20, help="typed turns and spoken turns, each")
    parser.add_argument("--messages", type=int, default=1000, help="echo round trips per loop kind")
    parser.add_argument("--json", default=str(REPO / "bench" / "results" / "overhead.json"))
    parser.add_argument("--serve-echo", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--reply-bytes", type=int, default=4800, help=argparse.SUPPRESS)
    parser.add_argument("--uvloop", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_echo:
        serve_echo(args.serve_echo, args.reply_bytes, args.uvloop)
        return

    info = machine()
    print(f"machine: {info['cpu_model']}, {info['logical_cores']} logical / {info['physical_cores']} physical cores "
          f"({info['usable_cores']} usable), {info['memory_gb']} GiB, Python {info['python']}, grpcio {info['grpcio']}")  # fmt: skip

    mesh = Mesh.build({"voxtral": "null", "orpheus": "null"})
    mesh.start(120)
    try:
        mesh_result = asyncio.run(mesh_turns(mesh.gateway.address, args.turns))
    finally:
        mesh.stop()
    reply_bytes = mesh_result["audio_out_bytes_median"] or 4800

    echo = {
        "uvloop": bare_echo(reply_bytes, args.messages, use_uvloop=True),
        "asyncio": bare_echo(reply_bytes, args.messages, use_uvloop=False),
    }

    typed_ms = mesh_result["typed"]["client_first_audio_ms"]
    rows: list[tuple[str, str, str]] = []

    def row(name: str, stats: dict[str, float]) -> None:
        rows.append(
            (name, f"{stats.get('p50', float('nan')):9.2f}", f"{stats.get('p95', float('nan')):9.2f}")
        )

    for kind in ("typed", "spoken"):
        for field in ("client_first_audio_ms", *LATENCY_FIELDS):
            if field in mesh_result[kind] and not (
                kind == "typed" and field in ("vad_decision_ms", "voice_to_voice_ms")
            ):
                row(f"mesh {kind}: {field}", mesh_result[kind][field])
    for loop_kind, result in echo.items():
        row(f"bare echo RTT ({loop_kind}, {IN_BYTES} B in / {reply_bytes} B out)", result["round_trip_ms"])

    ratios: dict[str, Any] = {}
    for loop_kind, result in echo.items():
        floor = result["round_trip_ms"]
        entry = {}
        for q in ("p50", "p95"):
            per_turn = typed_ms[q]
            per_hop = per_turn / TYPED_HOPS
            hop_floor = floor[q] / 2
            entry[q] = {
                "typed_turn_ms": round(per_turn, 3),
                "per_hop_ms": round(per_hop, 3),
                "floor_per_hop_ms": round(hop_floor, 3),
                "per_hop_over_floor": round(per_hop / hop_floor, 2),
                "turn_over_3_round_trips": round(per_turn / (3 * floor[q]), 2),
            }
        ratios[loop_kind] = entry

    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure (ms)':<{width}} {'p50':>9} {'p95':>9}")
    print("-" * (width + 20))
    for name, p50, p95 in rows:
        print(f"{name:<{width}} {p50} {p95}")
    print(f"\ntyped turn = {TYPED_HOPS} hops (client→gateway→voxtral→gateway→orpheus→gateway→client)")
    print(f"{'floor':<10} {'q':<4} {'turn ms':>9} {'hop ms':>8} {'floor hop':>10} {'hop/floor':>10}")
    for loop_kind, entry in ratios.items():
        for q, e in entry.items():
            print(f"{loop_kind:<10} {q:<4} {e['typed_turn_ms']:9.2f} {e['per_hop_ms']:8.2f} "
                  f"{e['floor_per_hop_ms']:10.3f} {e['per_hop_over_floor']:9.1f}x")  # fmt: skip
    if mesh_result["errors"]:
        print(f"\nstage errors during the run: {mesh_result['errors'][:5]}")

    out = {
        "machine": info,
        "turns": args.turns,
        "mesh": mesh_result,
        "bare_echo": echo,
        "ratios": ratios,
        "note": "the mesh services run with their default event loop (uvloop where installed)",
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
