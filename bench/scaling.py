"""Scaling out on one machine: capacity with 1 vs 2 replicas of a stage, and failover time.

capacity: a CPU mesh (webrtcvad, echo, espeak) whose voxtral stage has 1, then
2 replicas on loopback ports behind one gateway (an ipv4: list); each load
level runs spoken sessions (voxmesh bench's users) and the capacity is the
largest level whose response latency p95 stays at or under --p95-ms.

failover: two voxtral replicas; one session takes a typed turn, the replica
serving it is killed -9, and the session sends a turn every 0.2 s until one
completes on the other replica. The figure runs from the kill to that
TurnComplete (so it holds one turn's own latency too). The killed replica is
restarted before the next round.

new-replica: voxtral replicas on 127.0.0.2 and .3 behind a loopback DNS
server (a headless Service played on one machine: the gateway is given
dns://127.0.0.1:PORT/voxtral-replicas:PORT and its default 5 s re-resolve),
new sessions arriving every 0.1 s and each held 1 s. A third replica is
started on 127.0.0.4 at a random phase of the gateway's resolve timer (start
-> SERVING), its record published once it serves, and the figure runs from
that to its first session (its own session gauge).
Then it is stopped and its record withdrawn, and the next round starts.

    .venv/bin/python bench/scaling.py capacity --levels 1,2,4,6,8 [--json FILE]
    .venv/bin/python bench/scaling.py failover --kills 10 [--json FILE]
    .venv/bin/python bench/scaling.py new-replica --rounds 10 [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import time
import urllib.request
from typing import Any

from voxmesh.bench import machine, percentiles, run_level
from voxmesh.client import AsyncSession, Event, TurnComplete
from voxmesh.loopback_dns import LoopbackDns
from voxmesh.processes import ServiceProcess, free_port


def _replica(name: str, *args: str) -> tuple[ServiceProcess, int]:
    metrics = free_port()
    return ServiceProcess(name, free_port(), ["--metrics-port", str(metrics), *args]), metrics


def _sessions_on(metrics_port: int, host: str = "127.0.0.1") -> float:
    with urllib.request.urlopen(f"http://{host}:{metrics_port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    found = re.search(r'^voxmesh_active_sessions\{service="\w+"\} (\S+)$', text, re.MULTILINE)
    return float(found[1]) if found else 0.0


class _Mesh:
    """vad, ``voxtral_replicas`` echo replicas, ``orpheus_replicas`` espeak replicas, a gateway."""

    def __init__(self, voxtral_replicas: int, orpheus_replicas: int = 1, max_sessions: int = 64) -> None:
        limit = ["--max-sessions", str(max_sessions)]
        self.vad, _ = _replica("vad", *limit)
        self.voxtral = [_replica("voxtral", "--engine", "echo", *limit) for _ in range(voxtral_replicas)]
        self.orpheus = [_replica("orpheus", "--engine", "espeak", *limit) for _ in range(orpheus_replicas)]
        stages = [self.vad, *(p for p, _ in self.voxtral), *(p for p, _ in self.orpheus)]
        for svc in stages:
            svc.start()
        for svc in stages:
            svc.wait_serving(180)

        def targets(replicas: list[tuple[ServiceProcess, int]]) -> str:
            return "ipv4:" + ",".join(p.address for p, _ in replicas)

        self.gateway = ServiceProcess(
            "gateway",
            free_port(),
            [
                "--metrics-port", "-1", *limit,
                "--vad-addr", self.vad.address,
                "--voxtral-addr", targets(self.voxtral),
                "--orpheus-addr", targets(self.orpheus),
            ],
        ).start()  # fmt: skip
        self.gateway.wait_serving(60)

    def stop(self) -> None:
        for svc in [self.gateway, self.vad, *(p for p, _ in self.voxtral), *(p for p, _ in self.orpheus)]:
            svc.stop()


def capacity(levels: list[int], turns: int, p95_ms: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for replicas in (1, 2):
        mesh = _Mesh(voxtral_replicas=replicas)
        rows = []
        try:
            for sessions in levels:
                level = asyncio.run(
                    run_level(mesh.gateway.address, sessions, turns, False, None, None, lambda: None)
                )
                p95 = level["latency_ms"]["response_latency_ms"].get("p95")
                rows.append({"sessions": sessions, "response_p95_ms": p95, "errors": len(level["errors"])})
                print(
                    f"voxtral x{replicas}: {sessions:3d} sessions  response p95 {p95} ms  errors {len(level['errors'])}"
                )
                if p95 is None or p95 > p95_ms or level["errors"]:
                    break
        finally:
            mesh.stop()
        fits = [
            r["sessions"]
            for r in rows
            if r["response_p95_ms"] is not None and r["response_p95_ms"] <= p95_ms and not r["errors"]
        ]
        out[f"voxtral_x{replicas}"] = {"levels": rows, "capacity_sessions": max(fits, default=0)}
    return out


async def _failover_round(mesh: _Mesh, index: int) -> float:
    async with await AsyncSession.connect(mesh.gateway.address) as session:
        events: list[tuple[float, Event]] = []

        async def read() -> None:
            async for event in session.events():
                events.append((time.perf_counter(), event))

        reader = asyncio.create_task(read())

        async def turn(text: str, timeout_s: float = 30) -> bool:
            start = len(events)
            await session.send_text(text)
            deadline = time.perf_counter() + timeout_s
            while time.perf_counter() < deadline:
                if any(isinstance(e, TurnComplete) for _, e in events[start:]):
                    return True
                if any(type(e).__name__ == "StageError" for _, e in events[start:]):
                    return False
                await asyncio.sleep(0.01)
            return False

        assert await turn(f"round {index} before the kill")
        await asyncio.sleep(2.5)  # the reply plays out (typing over it would be a barge-in)
        victim = next(p for p, m in mesh.voxtral if _sessions_on(m) >= 1)
        killed = time.perf_counter()
        victim.kill()
        while not await turn(f"round {index} after the kill", 10):  # noqa: ASYNC110 - each try is a turn
            await asyncio.sleep(0.2)
        done = next(t for t, e in reversed(events) if isinstance(e, TurnComplete))
        await session.end_input()
        await asyncio.wait_for(reader, 30)
    victim.start().wait_serving(180)
    return (done - killed) * 1000


def failover(kills: int) -> dict[str, Any]:
    mesh = _Mesh(voxtral_replicas=2)
    try:
        times = [asyncio.run(_failover_round(mesh, i)) for i in range(kills)]
    finally:
        mesh.stop()
    for i, ms in enumerate(times):
        print(f"kill {i}: next turn completed on the other replica {ms:.0f} ms after the kill")
    return {
        "kills": kills,
        "kill_to_completed_turn_ms": percentiles(times),
        "raw_ms": [round(t, 1) for t in times],
    }


async def _new_replica(rounds: int, resolve_interval_s: float) -> dict[str, Any]:
    port = free_port()
    dns = await LoopbackDns("voxtral-replicas").start()

    def voxtral_on(host: str) -> tuple[ServiceProcess, int]:
        metrics = free_port()
        args = ["--host", host, "--engine", "echo", "--metrics-port", str(metrics)]
        return ServiceProcess("voxtral", port, args, host=host), metrics

    old = [voxtral_on("127.0.0.2"), voxtral_on("127.0.0.3")]
    new, new_metrics = voxtral_on("127.0.0.4")
    vad, _ = _replica("vad")
    orpheus, _ = _replica("orpheus", "--engine", "espeak")
    gateway = ServiceProcess(
        "gateway",
        free_port(),
        [
            "--metrics-port", "-1",
            "--vad-addr", vad.address, "--orpheus-addr", orpheus.address,
            "--voxtral-addr", f"dns://127.0.0.1:{dns.port}/voxtral-replicas:{port}",
            "--stage-resolve-interval-s", str(resolve_interval_s),
        ],
    )  # fmt: skip
    everyone = [vad, orpheus, *(p for p, _ in old), gateway]
    arrivals: asyncio.Task[None] | None = None
    start_ms: list[float] = []
    first_session_ms: list[float] = []
    try:
        for svc in everyone[:-1]:
            svc.start()
        for svc in everyone[:-1]:
            await asyncio.to_thread(svc.wait_serving, 180)
            if svc.host != "127.0.0.1":
                dns.records.append(svc.host)
        gateway.start()
        await asyncio.to_thread(gateway.wait_serving, 60)

        async def one_session() -> None:
            async with await AsyncSession.connect(gateway.address):
                await asyncio.sleep(1.0)

        async def arrive() -> None:
            held: set[asyncio.Task[None]] = set()
            while True:
                task = asyncio.create_task(one_session())
                held.add(task)
                task.add_done_callback(held.discard)
                await asyncio.sleep(0.1)

        arrivals = asyncio.create_task(arrive())
        for index in range(rounds):
            # A random phase against the gateway's resolve timer: rounds of a
            # fixed length would all publish at the same point of its interval.
            await asyncio.sleep(random.uniform(0, resolve_interval_s))
            began = time.perf_counter()
            new.start()
            await asyncio.to_thread(new.wait_serving, 180)
            ready = time.perf_counter()
            dns.records.append(new.host)
            # Polls the replica's own gauge: no event crosses the process boundary.
            while await asyncio.to_thread(_sessions_on, new_metrics, new.host) < 1:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            taken = time.perf_counter()
            start_ms.append((ready - began) * 1000)
            first_session_ms.append((taken - ready) * 1000)
            print(
                f"round {index}: start -> SERVING {start_ms[-1]:.0f} ms, "
                f"record published -> first session {first_session_ms[-1]:.0f} ms"
            )
            dns.records.remove(new.host)
            await asyncio.sleep(resolve_interval_s + 1)  # the gateway forgets it before it goes
            await asyncio.to_thread(new.stop)
    finally:
        if arrivals is not None:
            arrivals.cancel()
        dns.close()
        for svc in [new, *everyone]:
            await asyncio.to_thread(svc.stop)
    return {
        "rounds": rounds,
        "resolve_interval_s": resolve_interval_s,
        "start_to_serving_ms": percentiles(start_ms),
        "published_to_first_session_ms": percentiles(first_session_ms),
        "raw_published_to_first_session_ms": [round(t, 1) for t in first_session_ms],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="part", required=True)
    cap = sub.add_parser("capacity")
    cap.add_argument("--levels", default="1,2,4,6,8")
    cap.add_argument("--turns", type=int, default=2)
    cap.add_argument("--p95-ms", type=float, default=300.0)
    cap.add_argument("--json", default="")
    fail = sub.add_parser("failover")
    fail.add_argument("--kills", type=int, default=10)
    fail.add_argument("--json", default="")
    grow = sub.add_parser("new-replica")
    grow.add_argument("--rounds", type=int, default=10)
    grow.add_argument("--resolve-interval-s", type=float, default=5.0)
    grow.add_argument("--json", default="")
    args = parser.parse_args()
    if args.part == "capacity":
        result = capacity([int(n) for n in args.levels.split(",")], args.turns, args.p95_ms)
    elif args.part == "failover":
        result = failover(args.kills)
    else:
        result = asyncio.run(_new_replica(args.rounds, args.resolve_interval_s))
    report = {"machine": machine(), "part": args.part, **result}
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
