"""``voxmesh bench``: concurrent sessions of paced speech, latency percentiles per stage.

Each simulated user speaks a sentence at real-time pace, keeps the
microphone open (silence) until the reply has finished playing, pauses,
and speaks again, for ``turns`` turns. With ``barge_in`` the user instead
speaks again half a second after the reply starts, which must produce an
``Interrupted``. Latencies come from each ``TurnComplete`` (the gateway's
own marks, DESIGN.md's definitions); the client also times speech-end to
first audio on its side, which includes the network hop back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psutil

from voxmesh.client import AsyncSession, AudioOut, Interrupted, SpeechEnded, StageError, TurnComplete
from voxmesh.synthetic_speech import speak
from voxmesh.talk import CHUNK_MS

SENTENCES = (
    "what is the weather like today",
    "please book a table for two at eight",
    "how long does it take to get to the station",
    "tell me something about the moon",
)
#: TurnLatency fields reported, in DESIGN.md order.
STAGES = (
    "vad_decision_ms",
    "voxtral_first_token_ms",
    "first_phrase_ms",
    "orpheus_first_audio_ms",
    "gateway_overhead_ms",
    "response_latency_ms",
    "voice_to_voice_ms",
)
#: How long a simulated user waits for an answer before counting the turn lost.
TURN_TIMEOUT_S = 60.0
#: The pause a polite user leaves after the reply has played, seconds.
PAUSE_S = 0.3
RATE = 16_000


@dataclass
class SessionResult:
    latencies: list[dict[str, float]] = field(default_factory=list)
    client_response_ms: list[float] = field(default_factory=list)
    interruptions: int = 0
    errors: list[str] = field(default_factory=list)


async def _user(
    gateway: str,
    turns: int,
    barge_in: bool,
    offset: int,
    token: str | None,
    on_turn: Callable[[], None],
    until: float | None = None,
) -> SessionResult:
    """One simulated user holding one session for ``turns`` turns (or until ``until``, a perf_counter time)."""
    result = SessionResult()
    chunk = RATE * CHUNK_MS // 1000
    quiet = np.zeros(chunk, np.float32)
    reply_started = asyncio.Event()
    turn_over = asyncio.Event()
    reply_audio_s = 0.0
    speech_ended_at = 0.0
    first_audio_seen = False
    first_audio_at = 0.0

    async def read(session: AsyncSession) -> None:
        nonlocal reply_audio_s, first_audio_seen, first_audio_at, speech_ended_at
        async for event in session.events():
            if isinstance(event, AudioOut):
                if not first_audio_seen:
                    first_audio_seen = True
                    first_audio_at = time.perf_counter()
                    result.client_response_ms.append(1000 * (time.perf_counter() - speech_ended_at))
                    reply_started.set()
                reply_audio_s += len(event.pcm) / 2 / event.sample_rate_hz
            elif isinstance(event, TurnComplete):
                result.latencies.append(
                    {**{s: getattr(event.latency, s) for s in STAGES}, "at": time.perf_counter()}
                )
                turn_over.set()
                on_turn()
            elif isinstance(event, Interrupted):
                result.interruptions += 1
                turn_over.set()
                on_turn()
            elif isinstance(event, StageError):
                result.errors.append(f"{event.stage}: {event.code}: {event.message}")
                turn_over.set()
            elif isinstance(event, SpeechEnded):
                speech_ended_at = time.perf_counter()

    async def paced(
        audio: np.ndarray, session: AsyncSession, until: Callable[[], bool] | None = None
    ) -> None:
        start = time.perf_counter()
        i = 0
        while True:
            piece = audio[i * chunk : (i + 1) * chunk] if i * chunk < len(audio) else quiet
            if i * chunk >= len(audio) and (until is None or until()):
                return
            await session.send_audio(piece)
            i += 1
            delay = start + i * CHUNK_MS / 1000 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)

    async with await AsyncSession.connect(gateway, token=token, sample_rate_hz=RATE) as session:
        reader = asyncio.create_task(read(session))
        try:
            t = 0
            while (t < turns) if until is None else (time.perf_counter() < until):
                t += 1
                reply_started.clear()
                turn_over.clear()
                first_audio_seen = False
                reply_audio_s = 0.0
                sentence = speak(SENTENCES[(offset + t) % len(SENTENCES)])
                await paced(sentence, session)
                # A lost turn must not stall the whole run: a user gives up after a while.
                give_up_at = time.perf_counter() + TURN_TIMEOUT_S
                if barge_in:
                    await paced(
                        quiet[:0], session, until=functools.partial(_set_or_past, reply_started, give_up_at)
                    )
                    if not reply_started.is_set():
                        result.errors.append(f"turn {t}: no reply audio within {TURN_TIMEOUT_S:g} s")
                    await paced(np.zeros(int(0.5 * RATE), np.float32), session)
                    continue  # the next sentence interrupts this reply
                # Keep the mic open until the reply is over and has been heard
                # (it plays from its first chunk on, in real time).
                await paced(quiet[:0], session, until=functools.partial(_set_or_past, turn_over, give_up_at))
                if not turn_over.is_set():
                    result.errors.append(f"turn {t}: no TurnComplete within {TURN_TIMEOUT_S:g} s")
                    on_turn()
                    continue
                heard_at = first_audio_at + reply_audio_s + PAUSE_S
                await paced(quiet[:0], session, until=functools.partial(_past, heard_at))
            await paced(np.zeros(int(1.5 * RATE), np.float32), session)
            await session.end_input()
            await asyncio.wait_for(reader, 120)
        finally:
            reader.cancel()
    return result


def _past(deadline: float) -> bool:
    return time.perf_counter() >= deadline


def _set_or_past(event: asyncio.Event, deadline: float) -> bool:
    return event.is_set() or _past(deadline)


class ProcessSampler:
    """Samples CPU and resident memory of the mesh's processes twice a second."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.cpu: dict[str, list[float]] = {name: [] for name in pids}
        self.rss: dict[str, list[int]] = {name: [] for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ProcessSampler:
        for proc in self.procs.values():
            proc.cpu_percent()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for name, proc in self.procs.items():
                with contextlib.suppress(psutil.Error):
                    self.cpu[name].append(proc.cpu_percent())
                    self.rss[name].append(proc.memory_info().rss)

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            name: {
                "cpu_percent_mean": round(float(np.mean(self.cpu[name])), 1) if self.cpu[name] else 0.0,
                "rss_mb_start": round(self.rss[name][0] / 2**20, 1) if self.rss[name] else 0.0,
                "rss_mb_peak": round(max(self.rss[name]) / 2**20, 1) if self.rss[name] else 0.0,
            }
            for name in self.procs
        }


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {
        "p50": round(float(p50), 1),
        "p95": round(float(p95), 1),
        "p99": round(float(p99), 1),
        "n": len(values),
    }


async def run_level(
    gateway: str,
    sessions: int,
    turns: int,
    barge_in: bool,
    token: str | None,
    pids: dict[str, int] | None,
    on_turn: Callable[[], None],
    duration_s: float | None = None,
) -> dict[str, Any]:
    """One load level: ``sessions`` users at once; returns its figures.

    With ``duration_s`` (a soak) users keep taking turns until it is over, and
    the figures add latency drift (first vs last quarter of the turns).
    """
    sampler = ProcessSampler(pids) if pids else contextlib.nullcontext()
    started = time.perf_counter()
    until = started + duration_s if duration_s else None
    with sampler:
        # Stagger starts over one sentence so users do not speak in lockstep.
        async def staggered(i: int) -> SessionResult:
            await asyncio.sleep(2.0 * i / max(1, sessions))
            return await _user(gateway, turns, barge_in, i, token, on_turn, until)

        results = await asyncio.gather(*(staggered(i) for i in range(sessions)), return_exceptions=True)
    wall = time.perf_counter() - started
    ok = [r for r in results if isinstance(r, SessionResult)]
    failures = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    latencies = [lat for r in ok for lat in r.latencies]
    level: dict[str, Any] = {
        "sessions": sessions,
        "turns_per_session": turns,
        "turns_completed": len(latencies),
        "interruptions": sum(r.interruptions for r in ok),
        "turns_per_s": round((len(latencies) + sum(r.interruptions for r in ok)) / wall, 2),
        "wall_s": round(wall, 1),
        "errors": [e for r in ok for e in r.errors] + failures,
        "latency_ms": {s: percentiles([lat[s] for lat in latencies]) for s in STAGES},
        "client_response_ms": percentiles([v for r in ok for v in r.client_response_ms]),
        "raw": {s: [lat[s] for lat in latencies] for s in STAGES},
    }
    if isinstance(sampler, ProcessSampler):
        level["processes"] = sampler.summary()
    if duration_s:
        ordered = [lat["response_latency_ms"] for lat in sorted(latencies, key=lambda lat: lat["at"])]
        quarter = max(1, len(ordered) // 4)
        level["drift"] = {
            "response_latency_p50_first_quarter_ms": percentiles(ordered[:quarter]).get("p50"),
            "response_latency_p50_last_quarter_ms": percentiles(ordered[-quarter:]).get("p50"),
        }
    return level


def machine() -> dict[str, Any]:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_report(report: dict[str, Any], path: str) -> None:
    with open(path, "w") as f:
        json.dump(report, f, indent=2)


def plot(report: dict[str, Any], path: str) -> bool:
    """Latency CDF per stage (first level) and p50/p95 vs sessions; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    levels = report["levels"]
    fig, (cdf, scale) = plt.subplots(1, 2, figsize=(12, 4.5))
    for level in levels[:1] + levels[-1:]:
        for stage in ("voxtral_first_token_ms", "orpheus_first_audio_ms", "response_latency_ms"):
            values = np.sort(level["raw"][stage])
            if len(values):
                cdf.plot(
                    values, np.linspace(0, 1, len(values)), label=f"{stage[:-3]} ({level['sessions']} sess.)"
                )
    cdf.set_xlabel("ms")
    cdf.set_ylabel("fraction of turns")
    cdf.set_title("Latency CDF")
    cdf.legend(fontsize=7)
    xs = [lv["sessions"] for lv in levels]
    for key in ("p50", "p95"):
        ys = [lv["latency_ms"]["response_latency_ms"].get(key, np.nan) for lv in levels]
        scale.plot(xs, ys, marker="o", label=f"response latency {key}")
    scale.set_xscale("log", base=2)
    scale.set_xlabel("concurrent sessions")
    scale.set_ylabel("ms")
    scale.set_title("Response latency vs sessions")
    scale.legend()
    fig.suptitle(report.get("title", "voxmesh bench"))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
