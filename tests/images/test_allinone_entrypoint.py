"""The all-in-one image's entry point, run as the image runs it, and the docs' ``docker run`` line for the edge.

The allinone stage's CUDA base cannot be pulled here, so its entry point, user,
working directory and environment (the gpu stage's, then its own, read from
docker/Dockerfile) are applied to the cpu image: the installed (non-editable)
package run as root from /workspace, with the CPU engines (the pod's
environment, and ``--profile cpu`` appended after the image name as a user
would: the gpu profile's ``--engine`` flags would win over the environment).
Then docs/deploy.md's ``docker run -p 8080:8080 voxmesh:cpu realtime ...`` in
front of that container's gateway. Everything is reached through ports
published on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.test_compose import _stages
from tests.images.docker_cli import DOCKERFILE, ROOT, docker, published_port, wait_until
from tests.images.turns import assert_spoken_reply, talk, typed_turn
from voxmesh.processes import check_health
from voxmesh.realtime.readiness import edge_ready

# The first test also waits for the cpu image's build (cold: a minute here, more on a slow mirror).
pytestmark = [pytest.mark.images, pytest.mark.timeout(900)]

NAME = "voxmesh-test-allinone"
EDGE_NAME = "voxmesh-test-edge"
NETWORK = "voxmesh-test-allinone"
#: What the pod sets: a card size instead of "auto" (no GPU to ask) and the CPU engines.
POD_ENV = {
    "VOXMESH_GPU_MEMORY_PROFILE": "24gb",
    "VOXMESH_VOXTRAL_ENGINE": "echo",
    "VOXMESH_ORPHEUS_ENGINE": "espeak",
}
SERVING_WITHIN_S = 240


@dataclass
class Stage:
    """What one Dockerfile stage sets for the container it runs."""

    env: dict[str, str]
    workdir: str
    user: str
    entrypoint: list[str]


def dockerfile_stage(name: str) -> Stage:
    stage = _stages(DOCKERFILE.read_text())[name]
    env = {}
    for line in re.findall(r"^ENV (.*)$", stage, re.MULTILINE):
        env.update(pair.split("=", 1) for pair in line.split())
    entrypoint = re.findall(r"^ENTRYPOINT (\[.*\])$", stage, re.MULTILINE)
    workdir = re.findall(r"^WORKDIR (\S+)$", stage, re.MULTILINE)
    user = re.findall(r"^USER (\S+)$", stage, re.MULTILINE)
    return Stage(env, workdir[-1], user[-1], json.loads(entrypoint[-1]) if entrypoint else [])


def docs_edge_line() -> list[str]:
    docs = (ROOT / "docs" / "deploy.md").read_text()
    match = re.search(r"`(docker run [^`]*-p 8080:8080 voxmesh:cpu realtime[^`]*)`", docs)
    assert match, "docs/deploy.md lost its `docker run -p 8080:8080 voxmesh:cpu realtime` line"
    return match.group(1).split()


@pytest.fixture(scope="module")
def allinone(cpu_image: str) -> Iterator[str]:
    """The entry point serving; its gateway's 127.0.0.1 address."""
    gpu, image = dockerfile_stage("gpu"), dockerfile_stage("allinone")
    assert image.workdir == "/workspace" and image.user == "root"
    assert image.entrypoint[:3] == ["python", "-m", "voxmesh.card_profiles"]
    env = {**gpu.env, **image.env, **POD_ENV}
    for leftover in (NAME, EDGE_NAME):
        docker("rm", "-f", "-v", leftover, check=False)
    docker("network", "rm", NETWORK, check=False)
    docker("network", "create", NETWORK)
    try:
        docker(
            "run", "-d", "--name", NAME, "--network", NETWORK,
            "-p", "127.0.0.1::50051", "-p", "127.0.0.1::8080",
            "--user", image.user, "--workdir", image.workdir,
            *[arg for key, value in env.items() for arg in ("-e", f"{key}={value}")],
            "--entrypoint", image.entrypoint[0], cpu_image, *image.entrypoint[1:],
            "--profile", "cpu",
        )  # fmt: skip
        gateway = f"127.0.0.1:{published_port(NAME, 50051)}"
        edge = f"127.0.0.1:{published_port(NAME, 8080)}"

        def serving() -> bool:
            state = docker("inspect", "-f", "{{.State.Status}}", NAME).strip()
            assert state == "running", docker("logs", NAME, check=False)
            return check_health(gateway) == "SERVING" and edge_ready(edge)

        wait_until("the all-in-one gateway and edge serving", serving, SERVING_WITHIN_S)
        yield gateway
    finally:
        print(docker("logs", "--tail", "40", NAME, check=False))
        for container in (EDGE_NAME, NAME):
            docker("rm", "-f", "-v", container, check=False, timeout_s=60)
        docker("network", "rm", NETWORK, check=False)


def test_a_spoken_turn_on_the_gateway(allinone: str, tmp_path: Path) -> None:
    assert_spoken_reply(talk(allinone, tmp_path), tmp_path)


async def test_a_typed_turn_on_its_edge(allinone: str) -> None:
    await typed_turn(f"ws://127.0.0.1:{published_port(NAME, 8080)}/v1")


def test_the_docs_docker_run_line_for_the_edge(allinone: str) -> None:
    """The edge alone in front of a gateway elsewhere (here: the all-in-one container's), on 8080."""
    line = docs_edge_line()
    assert line[:2] == ["docker", "run"]
    # Named, on the gateway's network, detached; the rest as the docs write it.
    argv = ["-d", "--name", EDGE_NAME, "--network", NETWORK, *line[2:]]
    argv = [arg.replace("GATEWAY_HOST", NAME) for arg in argv]
    docker("run", *argv)
    wait_until("the edge's /healthz on 127.0.0.1:8080", lambda: edge_ready("127.0.0.1:8080"), 60)
    with urllib.request.urlopen("http://127.0.0.1:8080/", timeout=5) as page:
        assert page.status == 200 and b"<html" in page.read().lower()
    asyncio.run(typed_turn("ws://127.0.0.1:8080/v1"))
    # The image's HEALTHCHECK asks each container what it runs: the edge its /healthz (it asked
    # gRPC on 50051 before, so `docker run … realtime` stayed unhealthy), `voxmesh up` its gateway.
    for container in (EDGE_NAME, NAME):
        wait_until(f"{container} healthy", lambda c=container: _health(c) == "healthy", 60, every_s=2)


def _health(container: str) -> str:
    state = docker("inspect", "-f", "{{.State.Health.Status}}", container).strip()
    assert state != "unhealthy", docker("inspect", "-f", "{{json .State.Health.Log}}", container)
    return state


def test_sigterm_stops_the_mesh_cleanly(allinone: str) -> None:
    docker("stop", "--time", "60", NAME, timeout_s=90)
    logs = docker("logs", NAME, check=False)
    assert docker("inspect", "-f", "{{.State.ExitCode}}", NAME).strip() == "0", logs
    assert "GPU memory profile 24gb" in logs
