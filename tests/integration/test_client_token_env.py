"""Client commands take the bearer token from VOXMESH_AUTH_TOKEN, as the deploy docs run them.

``docs/deploy.md`` and the chart's NOTES export the token and then run
``voxmesh talk`` with no ``--token``; it used to be refused (UNAUTHENTICATED).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from tests.integration.conftest import Mesh
from voxmesh.synthetic_speech import speak

TOKEN = "s3cret-token"


@pytest.fixture
def guarded(start_mesh) -> Mesh:  # type: ignore[no-untyped-def]
    return start_mesh(gateway_args=("--auth-token", TOKEN))  # type: ignore[no-any-return]


def voxmesh(*args: str, token: str | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "VOXMESH_AUTH_TOKEN"}
    if token is not None:
        env["VOXMESH_AUTH_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "voxmesh.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=180,
    )


def test_talk_reads_the_token_from_the_environment(guarded: Mesh, tmp_path: Path) -> None:
    sf.write(tmp_path / "question.wav", speak("what is the weather like today"), 16_000)
    talk = ("talk", "question.wav", "-o", "reply.wav", "--gateway", guarded.address, "--fast")
    refused = voxmesh(*talk, token=None, cwd=tmp_path)
    assert refused.returncode == 1 and "authorization: missing or wrong bearer token" in refused.stderr
    answered = voxmesh(*talk, token=TOKEN, cwd=tmp_path)
    assert answered.returncode == 0, answered.stderr
    assert "reply:      You said:" in answered.stdout
    wrong_flag = voxmesh(*talk, "--token", "not-it", token=TOKEN, cwd=tmp_path)
    assert wrong_flag.returncode == 1  # the flag still wins over the environment


def test_bench_reads_the_token_from_the_environment(guarded: Mesh, tmp_path: Path) -> None:
    bench = voxmesh(
        "bench", "--gateway", guarded.address, "--sessions", "1", "--turns", "1",
        "--json", "bench.json", "--plot", "", token=TOKEN, cwd=tmp_path,
    )  # fmt: skip
    assert bench.returncode == 0, bench.stdout + bench.stderr
    level = json.loads((tmp_path / "bench.json").read_text())["levels"][0]
    assert level["turns_completed"] == 1 and not level["errors"]
