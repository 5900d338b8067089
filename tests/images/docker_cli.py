"""The Docker and Compose command lines the image tests drive, as a user types them.

Every wait is bounded in time; containers are reached only through ports
published on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE_FILES = ("compose/docker-compose.yml", "compose/docker-compose.cpu.yml")
#: What compose's CPU profile runs; the observability services' images cannot be pulled here.
MESH_SERVICES = ("auth-init", "vad", "voxtral", "orpheus", "gateway", "realtime")
CPU_IMAGE = "voxmesh:cpu"


def docker_binary() -> str:
    """Debian's 20.10 client builds with BuildKit under DOCKER_BUILDKIT=1 (a 28.x one wants buildx)."""
    chosen = os.environ.get("VOXMESH_DOCKER") or ("/usr/bin/docker" if Path("/usr/bin/docker").exists() else "")
    found = chosen or shutil.which("docker")
    if not found:
        raise RuntimeError("no docker client: make test-images installs Debian's docker.io")
    return found


def user_env(**extra: str) -> dict[str, str]:
    """A shell with nothing set but PATH and HOME (where ~/.docker/cli-plugins is): what the README assumes."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **extra}


def docker(*args: str, timeout_s: float = 120, check: bool = True, env: dict[str, str] | None = None) -> str:
    """Run ``docker ARGS`` from the repository root; its stdout (stderr in the error when it fails)."""
    done = subprocess.run(
        [docker_binary(), *args],
        cwd=ROOT,
        env=env or user_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout + (done.stderr if not check else "")


def compose(*args: str, timeout_s: float = 120, check: bool = True) -> str:
    """``docker compose -f compose/docker-compose.yml -f compose/docker-compose.cpu.yml ARGS``."""
    files = [arg for path in COMPOSE_FILES for arg in ("-f", path)]
    return docker("compose", *files, *args, timeout_s=timeout_s, check=check)


def compose_ps() -> list[dict[str, Any]]:
    """``docker compose ps --all --format json``: one object per container (one per line in v2.2x+)."""
    out = compose("ps", "--all", "--format", "json").strip()
    if out.startswith("["):
        return list(json.loads(out))
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def wait_until(what: str, ready: Callable[[], bool], timeout_s: float, every_s: float = 1.0) -> None:
    """Poll ``ready`` at most ``timeout_s / every_s`` times; fail naming ``what``."""
    for _ in range(max(1, int(timeout_s / every_s))):
        if ready():
            return
        time.sleep(every_s)
    raise AssertionError(f"{what}: not within {timeout_s:.0f} s")


def published_port(container: str, port: int) -> int:
    """The 127.0.0.1 host port ``docker run -p 127.0.0.1::PORT`` picked."""
    out = docker("port", container, f"{port}/tcp").strip().splitlines()
    for line in out:
        host, _, host_port = line.rpartition(":")
        if host == "127.0.0.1":
            return int(host_port)
    raise AssertionError(f"{container} publishes {port} on {out}, not on 127.0.0.1")


def build_cpu_image() -> float:
    """``docker build --target cpu -t voxmesh:cpu .`` as the Dockerfile's header says; seconds taken."""
    start = time.monotonic()
    docker(
        "build",
        "-f",
        "docker/Dockerfile",
        "--target",
        "cpu",
        "-t",
        CPU_IMAGE,
        ".",
        timeout_s=900,
        env=user_env(DOCKER_BUILDKIT="1"),
    )
    return time.monotonic() - start
