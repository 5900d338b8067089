"""``voxmesh health --container`` (the images' HEALTHCHECK) against real services and edges.

Each runs as ``voxmesh serve NAME`` in its own process; the check reads that
process's command line (``--pid``; PID 1 in a container) and asks it where it
serves: gRPC health for the stages and the gateway, /healthz for the edges.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from voxmesh.container_health import HealthTarget, target_of
from voxmesh.processes import ServiceProcess, free_port
from voxmesh.realtime.readiness import wait_edge_serving


def _health(pid: int, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voxmesh.cli", "health", "--container", "--pid", str(pid), "--timeout", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_a_stage_is_asked_on_the_port_its_command_line_gives(
    start_service: Callable[..., ServiceProcess],
) -> None:
    vad = start_service("vad")
    assert vad.process is not None
    done = _health(vad.process.pid)
    assert done.returncode == 0, done.stderr
    assert f"vad at 127.0.0.1:{vad.port}: SERVING" in done.stdout
    # A port that nothing serves (the override) is unhealthy, and says where it asked.
    other = free_port()
    refused = _health(vad.process.pid, {"VOXMESH_HEALTH_PORT": str(other)})
    assert refused.returncode == 1 and f"127.0.0.1:{other}: UNREACHABLE" in refused.stderr


@pytest.mark.parametrize("edge", ["realtime", "telephony"])
def test_an_edge_is_asked_its_healthz(edge: str) -> None:
    # No gateway behind it: /healthz says the edge itself serves (the old check asked gRPC on 50051).
    process = ServiceProcess(
        edge, free_port(), ["--metrics-port", "-1", f"--gateway=127.0.0.1:{free_port()}"]
    )
    try:
        wait_edge_serving(process.start())
        assert process.process is not None
        done = _health(process.process.pid)
        assert done.returncode == 0, done.stderr
        assert f"{edge} at 127.0.0.1:{process.port}: SERVING" in done.stdout
    finally:
        process.stop()


def test_a_process_that_is_no_voxmesh_server_is_unhealthy_and_says_so() -> None:
    done = _health(os.getpid())
    assert done.returncode == 1
    assert f"cannot tell what process {os.getpid()} serves" in done.stderr


def test_the_targets_follow_flags_then_environment_then_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOXMESH_HEALTH_PORT", raising=False)
    monkeypatch.delenv("VOXMESH_VOXTRAL_PORT", raising=False)
    python = ["/usr/local/bin/python", "/usr/local/bin/voxmesh"]
    assert target_of([*python, "serve", "gateway"]) == HealthTarget("grpc", "127.0.0.1:50051", "gateway")
    assert target_of([*python, "serve", "voxtral", "--port=6000"]).address == "127.0.0.1:6000"
    monkeypatch.setenv("VOXMESH_VOXTRAL_PORT", "6100")
    assert target_of([*python, "serve", "voxtral"]).address == "127.0.0.1:6100"
    assert target_of([*python, "serve", "realtime", "--host", "0.0.0.0"]) == HealthTarget(
        "http", "127.0.0.1:8080", "realtime"
    )
    # The all-in-one image: `voxmesh up`, asked at its gateway.
    assert target_of([*python, "up", "--profile", "gpu", "--base-port", "7000"]).address == "127.0.0.1:7000"
    with pytest.raises(ValueError, match="not a voxmesh server"):
        target_of(["/bin/sh", "-c", "sleep 1"])
