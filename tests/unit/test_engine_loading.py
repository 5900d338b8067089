"""Engines built off the event loop (voxmesh.engine_loading) and a service stopped during its load.

vLLM's ``AsyncLLM.from_engine_args`` blocks its caller for the whole load;
built on the event loop, it froze health checks and SIGTERM for minutes.
Here the load is a function that blocks until the test releases it, so
"while it loads" needs no timing; the real vLLM engines are checked the
same way in tests/vllm/test_vllm_startup.py.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from voxmesh.engine_loading import load_off_loop
from voxmesh.processes import check_health, free_port


async def test_the_loop_runs_while_the_engine_loads() -> None:
    release = threading.Event()
    loading = asyncio.create_task(
        load_off_loop("test", lambda: release.wait(60) and "engine", lambda _: None)
    )
    # The loop is free: many turns of it pass while the load is blocked.
    for _ in range(20):
        await asyncio.sleep(0)
    assert not loading.done()
    release.set()
    assert await loading == "engine"


async def test_a_load_error_reaches_the_waiter() -> None:
    def fails() -> str:
        raise ValueError("no weights")

    with pytest.raises(ValueError, match="no weights"):
        await load_off_loop("test", fails, lambda _: None)


async def test_a_cancelled_load_is_unloaded_when_it_finishes_never_returned() -> None:
    release = threading.Event()
    unloaded: list[str] = []
    done = threading.Event()

    def unload(engine: str) -> None:
        unloaded.append(engine)
        done.set()

    loading = asyncio.create_task(load_off_loop("test", lambda: release.wait(60) and "engine", unload))
    await asyncio.sleep(0)
    loading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loading
    assert unloaded == []  # still loading: nothing to unload yet
    release.set()
    assert await asyncio.to_thread(done.wait, 30)
    assert unloaded == ["engine"]


#: A service whose engine load never ends on its own (as a vLLM load frozen mid-way).
BLOCKED_SERVICE = textwrap.dedent(
    """
    import asyncio, sys, threading
    from voxmesh.engine_loading import load_off_loop
    from voxmesh.logs import configure
    from voxmesh.server import ServiceSpec, serve
    from voxmesh.settings import ServiceSettings

    configure("test", "info")
    never = threading.Event()

    async def startup():
        await load_off_loop("test", never.wait, lambda _: None)

    spec = ServiceSpec(name="test", service_names=[], register=lambda server: None, startup=startup)
    asyncio.run(serve(spec, ServiceSettings(port=int(sys.argv[1]), metrics_port=-1)))
    """
)


def test_a_service_answers_not_serving_while_it_loads_and_stops_on_sigterm() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", BLOCKED_SERVICE, str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        address = f"127.0.0.1:{port}"
        # Bounded polling for the port to open (process start-up), not a timing assertion.
        status = "UNREACHABLE"
        for _ in range(300):
            status = check_health(address, timeout_s=10)
            if status != "UNREACHABLE" or process.poll() is not None:
                break
            time.sleep(0.1)
        # The load is still blocked: before the fix the loop could not answer at all.
        assert status == "NOT_SERVING"
        process.send_signal(signal.SIGTERM)
        # Before the fix the service waited for a load that never ends; now it stops at once.
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, out.decode()
    assert b"stopping during start-up" in out
