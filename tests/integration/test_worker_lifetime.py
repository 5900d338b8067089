"""A service's worker processes end with it, however it ends (SIGKILL included).

voxtral's echo engine decodes in spawned pocketsphinx workers; a SIGKILLed
voxtral used to leave them running with parent 1 (and multiprocessing's
resource tracker, which they hold open), ~140 MB each, after every fault test.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from voxmesh.processes import ServiceProcess, free_port


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_killed_voxtral_takes_its_decoding_workers_with_it() -> None:
    svc = ServiceProcess("voxtral", free_port(), ["--engine=echo", "--metrics-port=-1"]).start()
    workers: list[int] = []
    try:
        svc.wait_serving(120)
        assert svc.process is not None
        workers = children_of(svc.process.pid)
        assert workers, "the echo engine started no decoding worker"
        os.kill(svc.process.pid, signal.SIGKILL)
        svc.process.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(running(pid) for pid in workers):
            time.sleep(0.1)
        assert [pid for pid in workers if running(pid)] == []
    finally:
        for pid in workers:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
        svc.stop()
