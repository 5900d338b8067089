"""The GPU start-up lock serialises two real processes (vLLM issue #55827's remedy).

Each child takes ``gpu_startup_lock`` and reports on stdout: ``waiting`` when
the other holds it, ``acquired`` once it has it, ``released`` after. The
order of those lines is the assertion: no clock is involved.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from voxmesh.startup_lock import gpu_startup_lock, resolve

CHILD = """
import asyncio, sys
from voxmesh.startup_lock import gpu_startup_lock, resolve

async def main(path):
    async with gpu_startup_lock(path, "test", on_wait=lambda: print("waiting", flush=True)):
        print("acquired", flush=True)
        sys.stdin.readline()  # hold the lock until the test says so
    print("released", flush=True)

asyncio.run(main(sys.argv[1]))
"""


@pytest.fixture
def engines() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def start_engine(engines: list[subprocess.Popen[str]], path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    engines.append(proc)
    return proc


def next_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


def release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_second_engine_waits_until_the_first_releases(
    engines: list[subprocess.Popen[str]], tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "gpu-startup.lock"
    if kind == "directory":
        path.mkdir()
    first = start_engine(engines, path)
    assert next_line(first) == "acquired"
    second = start_engine(engines, path)
    # The second reports that it waits, and nothing else until the first lets go.
    assert next_line(second) == "waiting"
    release(first)
    assert next_line(first) == "released"
    assert next_line(second) == "acquired"
    release(second)
    assert next_line(second) == "released"
    assert first.wait() == 0 and second.wait() == 0


def test_a_killed_holder_frees_the_lock(engines: list[subprocess.Popen[str]], tmp_path: Path) -> None:
    # An engine that crashes (or is SIGKILLed) mid start-up must not block the next one forever.
    path = tmp_path / "gpu-startup.lock"
    first = start_engine(engines, path)
    assert next_line(first) == "acquired"
    second = start_engine(engines, path)
    assert next_line(second) == "waiting"
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert next_line(second) == "acquired"
    release(second)
    assert next_line(second) == "released"


async def test_empty_path_means_no_lock() -> None:
    # With a path, the inner lock (a second open file description) would wait forever.
    entered = False
    async with gpu_startup_lock("", "test"), gpu_startup_lock("", "test"):
        entered = True
    assert entered


def test_auto_locks_only_where_there_is_a_gpu(tmp_path: Path) -> None:
    # vLLM's CPU engines share no card: serialising them would only slow unrelated runs.
    assert resolve("auto", has_gpu=lambda: False) == ""
    assert resolve("auto", has_gpu=lambda: True).endswith("voxmesh-gpu-startup.lock")
    assert resolve(str(tmp_path / "x.lock"), has_gpu=lambda: False) == str(tmp_path / "x.lock")
    assert resolve("", has_gpu=lambda: True) == ""
