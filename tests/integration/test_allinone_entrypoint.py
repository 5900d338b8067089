"""The all-in-one image's entry point, run on CPU exactly as ``docker run IMAGE ARGS`` would.

docker/Dockerfile's ``allinone`` ENTRYPOINT is read from the file; the
arguments a user would append after the image name switch it to the CPU
profile on free loopback ports (argparse: a later flag wins). What it must
do: put the GPU memory profile's settings into every stage's environment
(what the pod sets itself wins), and bring the whole mesh up to SERVING.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from voxmesh.card_profiles import PROFILES
from voxmesh.processes import check_health, free_port

DOCKERFILE = Path(__file__).resolve().parents[2] / "docker" / "Dockerfile"


def allinone_entrypoint() -> list[str]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    body = text.split("AS allinone", 1)[1]
    match = re.search(r"^ENTRYPOINT (\[.*\])$", body, re.MULTILINE)
    assert match is not None
    command: list[str] = json.loads(match.group(1))
    return command


def serving_stages(pid: int) -> dict[str, dict[str, str]]:
    """``voxmesh serve STAGE`` processes under ``pid``: their environments by stage."""
    stages = {}
    for child in psutil.Process(pid).children(recursive=True):
        try:
            cmdline = child.cmdline()
            if "serve" in cmdline:
                stages[cmdline[cmdline.index("serve") + 1]] = child.environ()
        except psutil.NoSuchProcess:
            continue  # a helper that exited while we looked
    return stages


def test_entrypoint_runs_the_mesh_with_the_profile_settings() -> None:
    base = free_port()
    command = allinone_entrypoint()
    assert command[0] == "python"
    command = [sys.executable, *command[1:], "--profile", "cpu", "--host", "127.0.0.1"]
    command += ["--base-port", str(base), "--no-metrics", "--startup-timeout", "240"]
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "VOXMESH_GPU_MEMORY_PROFILE": "48gb",
        # Set by the pod: wins over the profile.
        "VOXMESH_ORPHEUS_MAX_SESSIONS": "5",
        # The CPU engines: no realtime model to load here.
        "VOXMESH_VOXTRAL_REALTIME_MODEL": "",
        "VOXMESH_VOXTRAL_MODE": "stream",
    }
    up = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 280
        while check_health(f"127.0.0.1:{base}") != "SERVING":
            assert up.poll() is None, up.communicate()[0]
            assert time.monotonic() < deadline, "the mesh did not come up"
            time.sleep(0.5)
        # The Realtime edge is started after the gateway serves: wait for all five.
        stages = serving_stages(up.pid)
        while set(stages) != {"vad", "voxtral", "orpheus", "gateway", "realtime"}:
            assert up.poll() is None, up.communicate()[0]
            assert time.monotonic() < deadline, f"only {sorted(stages)} started"
            time.sleep(0.5)
            stages = serving_stages(up.pid)
        profile = PROFILES["48gb"].env()
        for stage_env in stages.values():
            assert (
                stage_env["VOXMESH_VOXTRAL_GPU_MEMORY_UTILIZATION"]
                == profile["VOXMESH_VOXTRAL_GPU_MEMORY_UTILIZATION"]
            )
            assert stage_env["VOXMESH_GATEWAY_MAX_SESSIONS"] == profile["VOXMESH_GATEWAY_MAX_SESSIONS"]
            assert stage_env["VOXMESH_ORPHEUS_MAX_SESSIONS"] == "5"
        for stage in ("vad", "voxtral", "orpheus"):
            assert (
                check_health(f"127.0.0.1:{base + 1 + ['vad', 'voxtral', 'orpheus'].index(stage)}")
                == "SERVING"
            )
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            out = up.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            up.kill()
            out = up.communicate()[0]
    assert "GPU memory profile 48gb" in out
    assert up.returncode == 0, out
