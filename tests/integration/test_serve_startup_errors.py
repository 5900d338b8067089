"""`voxmesh serve` refuses a bad start-up with one clear line and exit status 2, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["voxtral", "--engine", "vllm"], "needs vLLM"),  # vLLM lives in its own venv, not this one
        (["voxtral", "--engine", "nonsense"], "unknown engine 'nonsense'"),
        (["orpheus", "--engine", "nonsense"], "unknown engine 'nonsense'"),
        (["orpheus", "--voice", "robot"], "unknown voice 'robot'"),
        (["vad", "--engine", "nonsense"], "engine"),
    ],
)
def test_bad_start_up_is_one_line_and_status_2(args: list[str], expected: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "voxmesh.cli", "serve", *args, "--port", "0", "--metrics-port", "-1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert expected in run.stderr
    assert "Traceback" not in run.stderr
