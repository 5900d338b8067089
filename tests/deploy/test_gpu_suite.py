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
    # The streams sweep first, through the service's own session, then one stream's speed.
    levels = orpheus["streams"]["levels"]
    assert [level["streams"] for level in levels] == [1, 2]
    for level in levels:
        assert level["first_audio_ms_p95"] >= level["first_audio_ms_p50"] > 0
        assert level["real_time_factor_min"] > 0 and level["largest_gap_ms_max"] >= 0
        assert level["audio_s_per_stream"] > 0
    assert [single["static_cache"] for single in orpheus["single"]] == [False]  # CPU: eager only
    assert orpheus["single"][0]["tokens_per_s"] > 0
    assert orpheus["dtype"] == "float32"  # bfloat16 on CUDA
    latency = json.loads((tmp_path / "voxtral-latency.json").read_text())
    assert {row["mode"] for row in latency["rows"]} == {"audio", "stream"}
    assert latency["start_s"] > 0
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


#: A stand-in for a `gpu` test that starts a service and hangs: the service runs in a session of
#: its own, as ServiceProcess starts them, so timeout(1)'s process-group kill cannot reach it.
HANGING_TEST = """
import subprocess, sys, time
import pytest

pytestmark = pytest.mark.gpu

def test_hangs_with_a_service_in_its_own_session():
    service = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(900)"], start_new_session=True)
    with open({pid_file!r}, "w") as f:
        f.write(str(service.pid))
    time.sleep(900)
"""


@pytest.mark.timeout(300)
def test_a_part_past_its_limit_is_stopped_with_the_services_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "service.pid"
    test_file = tmp_path / "test_hanging.py"
    test_file.write_text(HANGING_TEST.format(pid_file=str(pid_file)))
    run, summary = suite(
        tmp_path / "out",
        "--tiny",
        "--only",
        "gpu-tests",
        "--limits",
        "gpu-tests=40",
        "--pytest-args",
        str(test_file),
        timeout=240,
    )
    assert run.returncode == 1
    (part,) = [p for p in summary["parts"] if p["part"] == "gpu-tests"]
    assert part["outcome"] == "failed" and part["why"].startswith("timed out after 40 s"), part
    assert pid_file.exists(), "the stand-in test did not start its service within the limit"
    pid = int(pid_file.read_text())
    # Gone (or a zombie of its dead parent, until init reaps it): it was killed, not left running.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        state = "gone"
    assert state in ("gone", "Z"), f"the part's service (pid {pid}) is still running"
    assert "of its processes were left and killed" in part["why"]


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
