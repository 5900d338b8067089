"""Compose's token wiring, run for real: ``python -m voxmesh.auth_files`` makes the files as
compose's auth-init does, and the mesh starts with the token variables compose gives each
service (read from compose/docker-compose.yml, the mount point moved to a temporary folder).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml

from tests.integration.test_auth_tls import typed_turn
from voxmesh.client import Unauthenticated
from voxmesh.processes import ServiceProcess, free_port
from voxmesh.v1 import voxtral_pb2, voxtral_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
AUTH_DIR = "/var/lib/voxmesh/auth"


def compose_token_env(service: str, directory: Path) -> dict[str, str]:
    """The service's token variables from the compose file, pointing into ``directory``."""
    compose = yaml.safe_load((ROOT / "compose" / "docker-compose.yml").read_text())
    env = compose["services"][service]["environment"]
    return {k: str(v).replace(AUTH_DIR, str(directory)) for k, v in env.items() if "AUTH_TOKEN" in k}


def make_tokens(directory: Path, chosen: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "VOXMESH_AUTH_TOKEN"}
    if chosen:
        env["VOXMESH_AUTH_TOKEN"] = chosen
    out = subprocess.run(
        [sys.executable, "-m", "voxmesh.auth_files", str(directory)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, Path, str]]:
    directory = tmp_path_factory.mktemp("auth")
    printed = make_tokens(directory)
    started: list[ServiceProcess] = []
    try:
        stages = []
        for name, args in (("vad", []), ("voxtral", ["--engine=null"]), ("orpheus", ["--engine=null"])):
            svc = ServiceProcess(
                name, free_port(), [*args, "--metrics-port=-1"], compose_token_env(name, directory)
            )
            started.append(svc.start())
            stages.append(svc)
        for svc in stages:
            svc.wait_serving(120)
        addresses = [f"--{svc.name}-addr={svc.address}" for svc in stages]
        gateway = ServiceProcess(
            "gateway", free_port(), [*addresses, "--metrics-port=-1"], compose_token_env("gateway", directory)
        )
        started.append(gateway.start())
        gateway.wait_serving(120)
        yield gateway, directory, printed
    finally:
        for svc in reversed(started):
            svc.stop()


async def test_the_printed_token_opens_a_session_and_nothing_else_does(
    mesh: tuple[ServiceProcess, Path, str],
) -> None:
    gateway, directory, printed = mesh
    (token,) = [
        line for line in (directory / "client-tokens").read_text().splitlines() if not line.startswith("#")
    ]
    assert f"  {token}\n" in printed and len(token) >= 32
    assert (directory / "client-tokens").stat().st_mode & 0o077 == 0  # owner-only
    assert (await typed_turn(gateway.address, token=token)).reply_text
    for wrong in (None, "guess"):
        with pytest.raises(Unauthenticated):
            await typed_turn(gateway.address, token=wrong)


async def test_a_stage_takes_only_the_gateways_stage_token(mesh: tuple[ServiceProcess, Path, str]) -> None:
    gateway, directory, _ = mesh
    assert compose_token_env("voxtral", directory) == {
        "VOXMESH_VOXTRAL_AUTH_TOKENS_FILE": str(directory / "stage-token")
    }
    stage_token = (directory / "stage-token").read_text().strip()
    client_token = (directory / "client-tokens").read_text().split()[-1]
    target = next(a for a in gateway.args if a.startswith("--voxtral-addr=")).split("=", 1)[1]
    opening = [voxtral_pb2.RespondRequest(config=voxtral_pb2.RespondConfig())]
    async with grpc.aio.insecure_channel(target) as channel:
        stub = voxtral_pb2_grpc.VoxtralStub(channel)
        # No token, or a client's: a direct caller cannot use the stage.
        for metadata in ((), (("authorization", f"Bearer {client_token}"),)):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                async for _ in stub.Respond(iter(opening), metadata=metadata):
                    pass
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        call = stub.Respond(iter(opening), metadata=(("authorization", f"Bearer {stage_token}"),))
        assert (await call.read()).WhichOneof("event") == "engine"
        call.cancel()


def test_a_chosen_token_is_kept_and_the_files_are_not_remade(tmp_path: Path) -> None:
    make_tokens(tmp_path, chosen="my-chosen-token")
    stage = (tmp_path / "stage-token").read_text()
    printed = make_tokens(tmp_path)  # a restart: nothing changes
    assert "  my-chosen-token\n" in printed
    assert (tmp_path / "stage-token").read_text() == stage
    assert (tmp_path / "client-tokens").read_text().split("\n")[1:] == ["my-chosen-token", ""]


def test_grafanas_password_is_made_once_readable_by_the_group_only(tmp_path: Path) -> None:
    """The compose file's Grafana reads it (GF_SECURITY_ADMIN_PASSWORD__FILE, its uid in the files' group)."""
    printed = make_tokens(tmp_path)
    password_file = tmp_path / "grafana-admin-password"
    password = password_file.read_text().strip()
    assert len(password) >= 16
    assert str(password_file) in printed and password not in printed
    assert password_file.stat().st_mode & 0o777 == 0o640
    for token_file in ("client-tokens", "stage-token"):
        assert (tmp_path / token_file).stat().st_mode & 0o777 == 0o600
    make_tokens(tmp_path)  # a restart keeps it: Grafana set it on its first start only
    assert password_file.read_text().strip() == password
