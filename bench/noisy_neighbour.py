"""Noisy neighbours: 16 honest paced sessions alone, then beside 64 hostile clients.

On the null-engine mesh (real processes: webrtcvad, null voxtral and orpheus,
the gateway), the honest users of ``voxmesh bench`` speak paced sentences
and wait for each reply; the second run adds, in a separate process so their
CPU is not the honest clients' own, 16 clients each of: silent streams (open,
never send), two-byte chunk floods, oversized and malformed messages, and
connect-and-vanish loops. Each side is one client app with its own token
from the gateway's ``--auth-tokens-file`` (the hostile app's token is valid:
a buggy or abusive customer, the worst case), and each app may hold
``--max-sessions-per-client`` sessions and send
``--max-input-messages-per-client-s`` messages per second (past that it is
read more slowly). The honest side and the mesh run on half the CPUs, the
hostile clients on the other half: attackers are not on the gateway's host. Reported: the honest sessions'
response latency p50/p95 and errors in both runs, the gateway's peak RSS,
and what each hostile kind got back (status codes, counted).

    .venv/bin/python bench/noisy_neighbour.py [--turns 3] [--json bench/results/noisy_neighbour.json]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from voxmesh.bench import machine, run_level
from voxmesh.client import messages
from voxmesh.mesh import Mesh
from voxmesh.v1 import conversation_pb2, conversation_pb2_grpc

HONEST = 16
HOSTILE_PER_KIND = 16
HONEST_TOKEN = "honest-app"
HOSTILE_TOKEN = "hostile-app"
#: Sessions per app: the honest app's 16, and the hostile app can hold at most the other half
#: of orpheus's 32 (the smallest stage limit).
PER_CLIENT = 16
#: Messages per second per app: the honest app's 16 speakers send ~800 (20 ms chunks).
MESSAGES_PER_CLIENT_S = 2000
KINDS = ("silent", "flood", "malformed", "vanish")


# --- the hostile side (its own process) ------------------------------------------------------


def _requests(kind: str, round_: int) -> AsyncIterator[conversation_pb2.ConverseRequest]:
    async def gen() -> AsyncIterator[conversation_pb2.ConverseRequest]:
        if kind == "silent":
            await asyncio.sleep(3600)  # the stream stays open, saying nothing
            return
        if kind == "malformed":
            variant = round_ % 3
            if variant == 0:  # audio before the config
                yield conversation_pb2.ConverseRequest(audio=conversation_pb2.AudioChunk(pcm=b"\0\0"))
            elif variant == 1:  # an absurd config
                yield conversation_pb2.ConverseRequest(
                    config=conversation_pb2.SessionConfig(input_sample_rate_hz=7, language="x" * 5000)
                )
            else:  # oversized and odd-length audio
                yield messages.config_request()
                yield conversation_pb2.ConverseRequest(audio=conversation_pb2.AudioChunk(pcm=b"\1" * 300_001))
            await asyncio.sleep(1)
            return
        yield messages.config_request()
        if kind == "flood":
            chunk = conversation_pb2.ConverseRequest(audio=conversation_pb2.AudioChunk(pcm=b"\1\0"))
            while True:
                yield chunk

    return gen()


async def _hostile(address: str, kind: str, until: float, outcomes: collections.Counter[str]) -> None:
    round_ = 0
    async with grpc.aio.insecure_channel(address) as channel:
        stub = conversation_pb2_grpc.ConversationStub(channel)
        while time.monotonic() < until:
            round_ += 1
            call = stub.Converse(
                _requests(kind, round_),
                timeout=max(0.1, until - time.monotonic()),
                metadata=(("authorization", f"Bearer {HOSTILE_TOKEN}"),),
            )
            try:
                if kind == "vanish":
                    await asyncio.sleep(0.05)
                    call.cancel()
                    outcomes["vanished"] += 1
                    await asyncio.sleep(0.05)
                    continue
                async for _ in call:
                    pass
                outcomes["OK"] += 1
            except grpc.aio.AioRpcError as exc:
                detail = (exc.details() or "").split(":")[0][:40]
                outcomes[f"{exc.code().name} ({detail})"] += 1
            except asyncio.CancelledError:
                outcomes["cancelled"] += 1
            await asyncio.sleep(0.05)


async def hostile_main(address: str, seconds: float) -> dict[str, dict[str, int]]:
    until = time.monotonic() + seconds
    outcomes = {kind: collections.Counter[str]() for kind in KINDS}
    await asyncio.gather(
        *(_hostile(address, kind, until, outcomes[kind]) for kind in KINDS for _ in range(HOSTILE_PER_KIND)),
        return_exceptions=True,
    )
    return {kind: dict(counter) for kind, counter in outcomes.items()}


# --- the honest side and the report ----------------------------------------------------------


def split_cpus() -> tuple[set[int], set[int]]:
    """Pin this process (the honest users, and the mesh it starts) to half the CPUs and
    leave the other half to the hostile clients: attackers do not run on the gateway's
    host, so their own CPU must not be what slows the honest sessions. Both runs (alone
    and beside) use the same half. On one CPU nothing is pinned.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return set(cpus), set()
    half = len(cpus) // 2
    mesh_cpus, hostile_cpus = set(cpus[half:]), set(cpus[:half])
    os.sched_setaffinity(0, mesh_cpus)  # children (the mesh's processes) inherit it
    return mesh_cpus, hostile_cpus


def summary(level: dict[str, Any]) -> dict[str, Any]:
    return {
        "turns_completed": level["turns_completed"],
        "errors": len(level["errors"]),
        "error_samples": level["errors"][:3],
        "response_latency_ms": level["latency_ms"]["response_latency_ms"],
        "client_response_ms": level["client_response_ms"],
        "gateway_rss_mb_peak": level.get("processes", {}).get("gateway", {}).get("rss_mb_peak"),
        "gateway_cpu_percent_mean": level.get("processes", {}).get("gateway", {}).get("cpu_percent_mean"),
    }


async def honest(mesh: Mesh, turns: int) -> dict[str, Any]:
    pids = {svc.name: svc.process.pid for svc in mesh.services if svc.process is not None}
    return await run_level(mesh.gateway.address, HONEST, turns, False, HONEST_TOKEN, pids, lambda: None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--json", default="")
    parser.add_argument("--hostile", metavar="ADDRESS", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=60.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hostile:
        print(json.dumps(asyncio.run(hostile_main(args.hostile, args.seconds))))
        return 0

    tokens = tempfile.NamedTemporaryFile("w", prefix="voxmesh-tokens-", delete=False)
    tokens.write(f"{HONEST_TOKEN}\n{HOSTILE_TOKEN}\n")
    tokens.close()
    gateway_args = [
        *("--max-sessions", "256", "--first-message-timeout-s", "5"),
        *("--auth-tokens-file", tokens.name, "--max-sessions-per-client", str(PER_CLIENT)),
        *("--max-input-messages-per-client-s", str(MESSAGES_PER_CLIENT_S)),
    ]
    mesh_cpus, hostile_cpus = split_cpus()
    mesh = Mesh.build({"voxtral": "null", "orpheus": "null"}, extra_args={"gateway": gateway_args})
    mesh.start(120)
    try:
        alone = asyncio.run(honest(mesh, args.turns))
        print("alone:", json.dumps(summary(alone)), flush=True)
        # The hostile clients run a little longer than the honest run took alone.
        seconds = float(alone["wall_s"]) + 15
        hostile = subprocess.Popen(
            [sys.executable, __file__, "--hostile", mesh.gateway.address, "--seconds", str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, hostile_cpus)) if hostile_cpus else None,
        )
        try:
            time.sleep(3)  # the floods are running when the honest users start
            beside = asyncio.run(honest(mesh, args.turns))
            out, _ = hostile.communicate(timeout=seconds + 60)
        finally:
            hostile.kill()
        print("beside 64 hostile clients:", json.dumps(summary(beside)), flush=True)
        try:
            outcomes: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            outcomes = {"error": out[-500:]}
        print("hostile clients got:", json.dumps(outcomes), flush=True)
        alive = mesh.gateway.exit_reason() is None
        report = {
            "machine": machine(),
            "cpus": {"mesh_and_honest": sorted(mesh_cpus), "hostile": sorted(hostile_cpus)},
            "alone": summary(alone),
            "beside_hostile": summary(beside),
            "hostile_outcomes": outcomes,
            "gateway_alive": alive,
        }
        if args.json:
            with open(args.json, "w") as f:
                json.dump(report, f, indent=2)
    finally:
        mesh.stop()
        os.unlink(tokens.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
