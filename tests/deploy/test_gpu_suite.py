"""bench/gpu_suite.sh (GPU figures in one command) and the wheel folder it installs from.

The suite runs here end to end with ``--tiny`` (tiny shapes on the CPU, every
part, real benchmark scripts and the real ``gpu`` test files); on a CUDA host
the same parts run at real size. bench/gpu_wheels.py is driven through its
command line, as ``make gpu-wheels`` drives it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PARTS = ["install", "host", "orpheus", "voxtral-latency", "voxtral-modes", "gpu-tests"]


def suite(
    out: Path, *args: str, timeout: float = 600
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    run = subprocess.run(
        [
            "bash",
            str(ROOT / "bench" / "gpu_suite.sh"),
            "--out",
            str(out),
            "--wheels",
            str(out / "no-wheels"),
            *args,
        ],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return run, json.loads((out / "summary.json").read_text())


def outcomes(summary: dict[str, Any]) -> dict[str, str]:
    return {p["part"]: p["outcome"] for p in summary["parts"]}


# ~2 min on 2 idle cores; the suite's own --tiny budget (20 min) bounds it on a busy machine.
@pytest.mark.timeout(1300)
def test_tiny_suite_runs_every_part_and_writes_json(tmp_path: Path) -> None:
    run, summary = suite(tmp_path, "--tiny", timeout=1260)
    assert run.returncode == 0, run.stdout + run.stderr
    assert outcomes(summary) == {"install": "skipped", **{p: "ok" for p in PARTS[1:]}}, run.stdout
    orpheus = json.loads((tmp_path / "orpheus.json").read_text())
    assert orpheus["single"]["tokens_per_s"] > 0
    assert [level["streams"] for level in orpheus["concurrent"]] == [1, 2]
    latency = json.loads((tmp_path / "voxtral-latency.json").read_text())
    assert {row["mode"] for row in latency["rows"]} == {"audio", "stream"}
    assert all(row["first_token_ms_p50"] > 0 for row in latency["rows"])
    modes = json.loads((tmp_path / "voxtral-modes.json").read_text())
    assert set(modes["results"]) == {"audio", "stream"}
    tests = json.loads((tmp_path / "gpu-tests.json").read_text())
    # No CUDA here: the gpu tests are collected and skipped, never reported as passed.
    assert tests["counts"]["skipped"] == len(tests["tests"]) >= 3
    host = json.loads((tmp_path / "host.json").read_text())
    assert host["cuda"] is False and any(p.startswith("torch==") for p in host["packages"])


def test_a_part_that_cannot_run_is_one_line_and_the_suite_fails(tmp_path: Path) -> None:
    run, summary = suite(tmp_path, "--tiny", "--only", "orpheus", "--orpheus-args", "--no-such-flag")
    assert run.returncode == 1
    (orpheus,) = [p for p in summary["parts"] if p["part"] == "orpheus"]
    assert orpheus["outcome"] == "failed"
    assert "unrecognized arguments: --no-such-flag" in orpheus["why"]
    assert [line for line in run.stdout.splitlines() if line.startswith("gpu_suite: orpheus:")] == [
        f"gpu_suite: orpheus: failed — {orpheus['why']}"
    ]
    assert not (tmp_path / "voxtral-latency.log").exists()  # --only: the other parts did not run


def test_without_cuda_each_gpu_part_says_so_in_one_line(tmp_path: Path) -> None:
    run, summary = suite(tmp_path, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    for part in PARTS[2:]:
        (entry,) = [p for p in summary["parts"] if p["part"] == part]
        assert entry["outcome"] == "skipped" and "no CUDA device" in entry["why"]


def gpu_wheels(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_wheels.py"), *args], capture_output=True, text=True
    )


def test_suite_requirements_are_the_projects_pins_over_the_hosts_torch() -> None:
    required = gpu_wheels("requirements").stdout.split()
    with open(ROOT / "pyproject.toml", "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    assert not any(r.startswith("torch") for r in required)  # the host's CUDA torch stays
    for pinned in extras["models"]:
        if not pinned.startswith(("torch", "transformers")):
            assert pinned in required
    assert "transformers>=5.17" in required  # the host's 5.17: no room for 5.23.0 beside numpy


def test_pins_leave_out_what_the_host_has(tmp_path: Path) -> None:
    report = {
        "install": [
            {"metadata": {"name": n, "version": v}}
            for n, v in [("voxmesh", "0.1.0"), ("torch", "2.13.0"), ("nvidia-nccl-cu13", "2"),
                         ("Pillow", "13.0.0"), ("snac", "1.2.1"), ("numpy", "2.3.5"), ("pydantic_core", "2.50.5")]
        ]
    }  # fmt: skip
    (tmp_path / "report.json").write_text(json.dumps(report))
    pins = gpu_wheels("pins", str(tmp_path / "report.json")).stdout.split()
    assert pins == ["numpy==2.3.5", "pydantic-core==2.50.5", "snac==1.2.1"]


def test_check_refuses_a_folder_over_64_mib_or_with_two_versions(tmp_path: Path) -> None:
    for name, size in [("a-1.0-py3-none-any.whl", 40), ("b-1.0-py3-none-any.whl", 20)]:
        with open(tmp_path / name, "wb") as f:
            f.truncate(size * 2**20)
    assert gpu_wheels("check", str(tmp_path)).returncode == 0
    with open(tmp_path / "c-1.0-py3-none-any.whl", "wb") as f:
        f.truncate(5 * 2**20)
    over = gpu_wheels("check", str(tmp_path))
    assert over.returncode == 1 and "65.0 MiB > 64 MiB" in over.stderr
    (tmp_path / "c-1.0-py3-none-any.whl").unlink()
    (tmp_path / "a-1.1-py3-none-any.whl").write_bytes(b"")
    twice = gpu_wheels("check", str(tmp_path))
    assert twice.returncode == 1 and "more than one version of a" in twice.stderr
