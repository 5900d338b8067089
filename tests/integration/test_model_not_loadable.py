"""A model that cannot be loaded: one line (which model, from where, what to do), status 3.

As a new user meets it: no GPU here and no route to the hub (``HF_HUB_OFFLINE``
with an empty cache, so nothing waits on the network). ``voxmesh serve``
used to print transformers' whole ``OSError`` traceback, then grpc's "Event
loop is closed", and exit 1; ``voxmesh up --profile gpu`` ran into it too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from voxmesh.exit_status import ExitStatus
from voxmesh.processes import free_port

VOXTRAL = "mistralai/Voxtral-Mini-3B-2507"


def offline_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_HUB_CACHE", "VOXMESH_AUTH_TOKEN")}
    return {**env, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}


def voxmesh(*args: str, env: dict[str, str], timeout_s: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voxmesh.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout_s,
    )


def assert_one_clean_line(run: subprocess.CompletedProcess[str]) -> str:
    output = run.stdout + run.stderr
    assert "Traceback" not in output, output
    assert "Event loop is closed" not in output, output
    return run.stderr.strip().splitlines()[-1]


def serve(service: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return voxmesh("serve", service, *args, "--port", "0", "--metrics-port", "-1", env=env)


def test_a_hub_model_not_in_the_cache_offline(tmp_path: Path) -> None:
    run = serve("voxtral", "--engine", "transformers", "--model", VOXTRAL, env=offline_env(tmp_path))
    assert run.returncode == ExitStatus.MODEL_NOT_LOADABLE, run.stderr
    line = assert_one_clean_line(run)
    assert line.startswith(
        f"voxmesh serve voxtral: model '{VOXTRAL}' could not be loaded from the Hugging Face hub"
    )
    assert str(tmp_path / "hf") in line  # where it looked
    assert "HF_HUB_OFFLINE is set" in line and "HF_TOKEN is not set" in line
    assert "--model PATH" in line and "HF_TOKEN" in line and "HF_HOME" in line  # what to do


def test_a_local_path_that_does_not_exist(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-orpheus")
    run = serve("orpheus", "--engine", "transformers", "--model", missing, env=offline_env(tmp_path))
    assert run.returncode == ExitStatus.MODEL_NOT_LOADABLE, run.stderr
    line = assert_one_clean_line(run)
    assert (
        f"model '{missing}' could not be loaded from the local path {missing}, which does not exist" in line
    )
    assert "point --model at a folder" in line


def test_the_snac_model_is_named_when_it_is_the_one_missing(tmp_path: Path) -> None:
    from voxmesh.services.orpheus.random_checkpoint import save_orpheus

    orpheus = save_orpheus(str(tmp_path / "orpheus"))
    run = serve(
        "orpheus", "--engine", "transformers", "--model", orpheus, "--snac-model", "hubertsiuzdak/snac_24khz",
        env=offline_env(tmp_path),
    )  # fmt: skip
    assert run.returncode == ExitStatus.MODEL_NOT_LOADABLE, run.stderr
    line = assert_one_clean_line(run)
    assert "model 'hubertsiuzdak/snac_24khz' could not be loaded from the Hugging Face hub" in line
    assert "--snac-model PATH" in line


def _up_gpu(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    base = free_port()
    return voxmesh(
        "up", "--profile", "gpu", "--base-port", str(base), "--no-metrics", *extra, env=offline_env(tmp_path)
    )


@pytest.mark.skipif(pytest.importorskip("torch").cuda.is_available(), reason="this machine has a CUDA device")
def test_up_gpu_without_a_cuda_device_says_so_and_exits_4(tmp_path: Path) -> None:
    run = _up_gpu(tmp_path)
    assert run.returncode == ExitStatus.NO_GPU, run.stdout + run.stderr
    line = assert_one_clean_line(run)
    assert "the gpu profile needs a CUDA device and torch" in line and "finds no CUDA device" in line
    assert "--profile cpu" in line and "--allow-cpu" in line


def test_up_exits_with_the_stage_line_when_a_model_cannot_be_loaded(tmp_path: Path) -> None:
    """No hang, no retry: the stage's one line, and up's status is the stage's (3)."""
    run = _up_gpu(tmp_path, "--allow-cpu")
    assert run.returncode == ExitStatus.MODEL_NOT_LOADABLE, run.stdout + run.stderr
    line = assert_one_clean_line(run)
    assert line.startswith("voxmesh serve ") and "could not be loaded from the Hugging Face hub" in line
