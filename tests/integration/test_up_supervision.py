"""``voxmesh up`` restarts a service that dies, and gives up on a crash loop or a permanent failure."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import psutil
import pytest

from tests.integration.test_faults import _until
from voxmesh.client import AsyncSession, Event, StageError, TurnComplete
from voxmesh.exit_status import ExitStatus
from voxmesh.processes import ServiceProcess, check_health, free_port
from voxmesh.supervision import GiveUp, RestartPolicy, Supervisor
from voxmesh.synthetic_speech import silence, speak

FAST = RestartPolicy(first_backoff_s=0.1, max_restarts=2, window_s=300)


def _check_until(supervisor: Supervisor, done: Callable[[], bool], timeout_s: float = 30) -> GiveUp | None:
    """Run the supervisor's checks until ``done()`` is true or it gives up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (gave_up := supervisor.check()) is not None or done():
            return gave_up
        time.sleep(0.05)
    raise AssertionError(f"nothing happened within {timeout_s} s")


def _restarted(svc: ServiceProcess, old_pid: int) -> Callable[[], bool]:
    return lambda: svc.returncode is None and svc.process is not None and svc.process.pid != old_pid


def test_a_killed_service_comes_back_until_it_crash_loops() -> None:
    vad = ServiceProcess("vad", free_port(), ["--metrics-port", "-1"])
    said: list[str] = []
    supervisor = Supervisor([vad], FAST, said.append)
    try:
        vad.start().wait_serving()
        for _ in range(FAST.max_restarts):
            assert vad.process is not None
            killed = vad.process.pid
            vad.kill()
            assert _check_until(supervisor, _restarted(vad, killed)) is None
            vad.wait_serving()  # back on the same port
        vad.kill()
        gave_up = _check_until(supervisor, lambda: False)
        assert gave_up is not None and gave_up.status == ExitStatus.FAILED
        assert gave_up.reason == "killed by SIGKILL; giving up after 2 restarts within 300 s"
        assert [line.split(";")[0] for line in said if "restarting" in line] == ["vad killed by SIGKILL"] * 2
        assert sum("vad restarted (pid" in line for line in said) == 2
        with open(vad.log_path) as log:
            assert log.read().count("--- vad restarted (the last run killed by SIGKILL) ---") == 2
    finally:
        vad.stop()


def test_a_permanent_failure_is_not_retried() -> None:
    broken = ServiceProcess("vad", free_port(), ["--engine", "nonsense", "--metrics-port", "-1"]).start()
    said: list[str] = []
    gave_up = _check_until(Supervisor([broken], FAST, said.append), lambda: False, timeout_s=120)
    assert gave_up is not None and gave_up.status == ExitStatus.BAD_SETUP
    assert gave_up.reason == "exited with status 2 (bad setup: a restart cannot fix it)"
    assert said == []


def process_group(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group."""
    members = []
    for proc in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
    return members


def _free_port_block(count: int) -> int:
    """A base port with ``count`` consecutive free ports (``voxmesh up --base-port``)."""
    for _ in range(50):
        base = free_port()
        if base + count > 65_535:
            continue
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no block of free ports")


class UpProcess:
    """``voxmesh up`` as a child, its stdout and stderr collected line by line."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "voxmesh.cli", "up", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout_s: float = 180) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := re.search(pattern, line):
                    return match
            assert self.process.poll() is None, "\n".join(self.lines)
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} within {timeout_s} s:\n" + "\n".join(self.lines))


@pytest.fixture
def start_up() -> Iterator[Callable[..., tuple[UpProcess, int]]]:
    """``start_up(*extra_args)``: ``voxmesh up --profile cpu`` on free ports → (process, gateway port)."""
    started: list[UpProcess] = []

    def start(*extra: str) -> tuple[UpProcess, int]:
        base = _free_port_block(5)  # gateway, vad, voxtral, orpheus, realtime
        started.append(UpProcess("--profile", "cpu", "--base-port", str(base), "--no-metrics", *extra))
        return started[-1], base

    yield start
    for up in started:
        if up.process.poll() is None:
            up.process.send_signal(signal.SIGINT)
            up.process.wait(60)


async def test_up_restarts_a_killed_stage_and_the_session_recovers(
    start_up: Callable[..., tuple[UpProcess, int]],
) -> None:
    up, base = start_up()
    up.wait_for("voxmesh is up")
    voxtral_pid = int(up.wait_for(r"^\s+voxtral\s+grpc .* pid (\d+)").group(1))
    events: list[Event] = []
    async with await AsyncSession.connect(f"127.0.0.1:{base}") as session:

        async def read() -> None:
            async for event in session.events():
                events.append(event)

        reader = asyncio.create_task(read())
        assert len(process_group(voxtral_pid)) > 1  # voxtral (echo) and its pocketsphinx workers
        os.kill(voxtral_pid, signal.SIGKILL)
        errors = [e for e in await _until(events, 0, (StageError,)) if isinstance(e, StageError)]
        assert errors[0].stage == "voxtral" and errors[0].retryable, errors
        await asyncio.to_thread(up.wait_for, r"voxtral restarted \(pid \d+\)")
        for _ in range(100):  # SIGKILL is delivered asynchronously
            if not process_group(voxtral_pid):
                break
            await asyncio.sleep(0.1)
        assert process_group(voxtral_pid) == []  # its orphaned workers went with it
        while check_health(f"127.0.0.1:{base + 2}") != "SERVING":
            assert up.process.poll() is None, "\n".join(up.lines)
            await asyncio.sleep(0.2)
        recovered: list[Event] = []
        for _ in range(20):  # the gateway reconnects to voxtral with backoff
            start = len(events)
            await session.send_audio(speak("what is the weather like today"))
            await session.send_audio(silence(1.0))
            recovered = await _until(events, start, (TurnComplete, StageError), 30)
            if any(isinstance(e, TurnComplete) for e in recovered):
                break
            await asyncio.sleep(0.5)
        done = [e for e in recovered if isinstance(e, TurnComplete)]
        assert done and done[0].reply_text.startswith("You said:"), recovered
        await session.end_input()
        await asyncio.wait_for(reader, 30)
    assert up.process.poll() is None  # still up
    up.process.send_signal(signal.SIGINT)
    assert up.process.wait(60) == ExitStatus.OK, "\n".join(up.lines)


def test_up_gives_up_on_a_crash_loop_with_the_log_tail(
    start_up: Callable[..., tuple[UpProcess, int]],
) -> None:
    up, _ = start_up("--max-restarts", "1")
    up.wait_for("voxmesh is up")
    os.kill(int(up.wait_for(r"^\s+vad\s+grpc .* pid (\d+)").group(1)), signal.SIGKILL)
    os.kill(int(up.wait_for(r"vad restarted \(pid (\d+)\)").group(1)), signal.SIGKILL)
    assert up.process.wait(120) == ExitStatus.FAILED, "\n".join(up.lines)
    output = "\n".join(up.lines)
    assert (
        "voxmesh up: vad killed by SIGKILL; giving up after 1 restarts within 300 s; stopping the mesh"
        in output
    )
    assert "--- vad restarted (the last run killed by SIGKILL) ---" in output  # the log tail
    assert "stopping gateway" in output and "stopping voxtral" in output
