"""``docker compose`` reads the compose files in a shell with nothing set, as the README runs it.

Before auth-init made Grafana's password, every command (``up``, and ``ps``/``logs``
in a new shell) stopped at "required variable GRAFANA_ADMIN_PASSWORD is missing a value".
"""

from __future__ import annotations

import json

import pytest

from tests.images.docker_cli import docker

pytestmark = pytest.mark.images

AUTH_DIR = "/var/lib/voxmesh/auth"


def config(*files: str) -> dict:  # type: ignore[type-arg]
    args = [arg for path in files for arg in ("-f", path)]
    return dict(json.loads(docker("compose", *args, "config", "--format", "json")))


@pytest.mark.parametrize(
    "files",
    [
        ("compose/docker-compose.yml",),
        ("compose/docker-compose.yml", "compose/docker-compose.cpu.yml"),
    ],
    ids=["gpu", "cpu"],
)
def test_compose_needs_no_variable(files: tuple[str, ...]) -> None:
    services = config(*files)["services"]
    assert {"auth-init", "vad", "voxtral", "orpheus", "gateway", "realtime", "grafana"} <= set(services)
    # No anonymous access, and no password in the environment: Grafana reads auth-init's file.
    grafana = services["grafana"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == f"{AUTH_DIR}/grafana-admin-password"
    assert any(v["source"] == "auth" and v["target"] == AUTH_DIR and v.get("read_only") for v in grafana["volumes"])
    assert grafana["depends_on"]["auth-init"]["condition"] == "service_completed_successfully"


def test_ps_and_logs_work_in_a_new_shell() -> None:
    """The README's follow-up commands, with no project running: they answer, not fail on a variable."""
    docker("compose", "-f", "compose/docker-compose.yml", "ps")
    docker("compose", "-f", "compose/docker-compose.yml", "logs", "auth-init")
