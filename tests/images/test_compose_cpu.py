"""The README's laptop line, run for real: compose's CPU profile built, started and talked to.

``docker compose -f compose/docker-compose.yml -f compose/docker-compose.cpu.yml up -d``
with the mesh's services named (the observability images cannot be pulled here),
in a shell with nothing set; the client token is the one auth-init prints; turns go
through the ports compose publishes (gRPC 50051, the Realtime edge 8080). One
``up`` for the module; ``down -v`` always.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.images.docker_cli import MESH_SERVICES, compose, compose_ps, docker, wait_until
from tests.images.turns import assert_spoken_reply, talk, typed_turn
from voxmesh.processes import check_health

# The first test also waits for the cpu image's build (cold: a minute here, more on a slow mirror).
pytestmark = [pytest.mark.images, pytest.mark.timeout(900)]

LONG_RUNNING = tuple(s for s in MESH_SERVICES if s != "auth-init")
HEALTHY_WITHIN_S = 240
#: The gateway as compose publishes it (on every interface; the test uses loopback).
GATEWAY = "127.0.0.1:50051"


def health() -> dict[str, str]:
    """Service → its container's health ("healthy", "starting", ...; its state when it has no check)."""
    return {c["Service"]: c.get("Health") or c["State"] for c in compose_ps()}


def all_healthy() -> bool:
    states = health()
    return all(states.get(s) == "healthy" for s in LONG_RUNNING)


@pytest.fixture(scope="module")
def mesh(cpu_image: str) -> Iterator[str]:
    """The mesh up and healthy; the client token auth-init printed."""
    compose("down", "-v", "--remove-orphans", timeout_s=120)  # what an earlier, killed run left
    try:
        start = time.monotonic()
        compose("up", "-d", *MESH_SERVICES, timeout_s=300)
        wait_until(f"{LONG_RUNNING} healthy", all_healthy, HEALTHY_WITHIN_S, every_s=1)
        print(f"\ncompose up -d to all healthy: {time.monotonic() - start:.1f} s")
        printed = compose("logs", "--no-log-prefix", "auth-init")
        match = re.search(r"export VOXMESH_AUTH_TOKEN=(\S+)", printed)
        assert match, printed
        yield match.group(1)
    finally:
        logs = compose("logs", "--no-color", "--tail", "30", check=False, timeout_s=60)
        compose("down", "-v", "--remove-orphans", check=False, timeout_s=180)
        print(logs)


def test_auth_init_prints_the_token_and_where_grafanas_password_is(mesh: str) -> None:
    printed = compose("logs", "--no-log-prefix", "auth-init")
    assert "/var/lib/voxmesh/auth/grafana-admin-password" in printed
    assert mesh in printed


def test_grafana_can_read_its_password_and_nothing_else(mesh: str) -> None:
    """Grafana's uid (472, its image's) with compose's group_add reads the password file, not the tokens."""
    groups = json.loads(compose("config", "--format", "json"))["services"]["grafana"]["group_add"]
    volume = "voxmesh_auth"
    run = ["run", "--rm", "--user", "472:0", *[a for g in groups for a in ("--group-add", str(g))]]
    run += ["-v", f"{volume}:/var/lib/voxmesh/auth:ro", "--entrypoint", "cat", "voxmesh:cpu"]
    password = docker(*run, "/var/lib/voxmesh/auth/grafana-admin-password").strip()
    assert len(password) >= 16 and mesh not in password
    refused = docker(*run, "/var/lib/voxmesh/auth/client-tokens", check=False)
    assert "Permission denied" in refused


def test_a_spoken_turn_through_the_published_gateway(mesh: str, tmp_path: Path) -> None:
    assert_spoken_reply(talk(GATEWAY, tmp_path, mesh), tmp_path)


def test_the_gateway_refuses_a_client_without_the_token(mesh: str, tmp_path: Path) -> None:
    done = talk(GATEWAY, tmp_path, "not-the-token")
    assert done.returncode != 0
    assert "UNAUTHENTICATED" in done.stderr or "nauthenticated" in done.stderr, done.stderr


async def test_a_typed_turn_through_the_published_edge(mesh: str) -> None:
    await typed_turn("ws://127.0.0.1:8080/v1", mesh)


def test_a_crashed_stage_comes_back_and_the_next_turn_is_answered(mesh: str, tmp_path: Path) -> None:
    """The voxtral process killed as the OOM killer would: ``restart: unless-stopped`` brings it back.

    (``docker kill`` itself counts as a user's stop: Docker restarts no container it killed
    on request, under ``unless-stopped`` or ``always``, so the crash is made from the host.)
    """
    (container,) = compose("ps", "-q", "voxtral").split()
    before = int(docker("inspect", "-f", "{{.RestartCount}}", container))
    pid = int(docker("inspect", "-f", "{{.State.Pid}}", container))
    os.kill(pid, signal.SIGKILL)

    def restarted() -> bool:
        return int(docker("inspect", "-f", "{{.RestartCount}}", container)) > before

    wait_until("voxtral restarted", restarted, 60)
    wait_until("voxtral healthy again", lambda: health().get("voxtral") == "healthy", HEALTHY_WITHIN_S, 2)
    wait_until("gateway serving", lambda: check_health(GATEWAY) == "SERVING", 60)
    assert_spoken_reply(talk(GATEWAY, tmp_path, mesh), tmp_path)
