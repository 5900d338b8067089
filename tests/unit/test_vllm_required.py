"""`make test-vllm` fails on a broken vLLM install instead of skipping every vLLM test.

Runs pytest over tests/vllm in a child process with a stand-in ``vllm``
package first on the path: one whose import fails (a broken install), and one
that imports, with no test module collected (pytest's exit 5).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_vllm_tests(stub: str, tmp_path: Path, require: bool, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "vllm").mkdir()
    (tmp_path / "vllm" / "__init__.py").write_text(stub)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    env.pop("VOXMESH_REQUIRE_VLLM", None)
    if require:
        env["VOXMESH_REQUIRE_VLLM"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-m", "vllm", "tests/vllm", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


#: A broken install as pip leaves one: a dependency vLLM imports is gone (pytest.importorskip
#: skips on exactly this ModuleNotFoundError).
BROKEN = "import a_dependency_the_broken_install_lost\n"


def test_a_broken_vllm_fails_the_run_when_required(tmp_path: Path) -> None:
    run = run_vllm_tests(BROKEN, tmp_path, require=True)
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.stdout + run.stderr
    assert (
        "vLLM cannot be imported (No module named 'a_dependency_the_broken_install_lost')"
        in run.stdout + run.stderr
    )


def test_a_broken_vllm_still_skips_in_a_plain_run(tmp_path: Path) -> None:
    run = run_vllm_tests(BROKEN, tmp_path, require=False)
    # Every module skips at import, so pytest collected nothing: its exit 5, with no word on why.
    assert run.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, run.stdout + run.stderr
    assert re.search(r"=+ \d+ skipped in ", run.stdout)
    assert "cannot be imported" not in run.stdout


def test_a_required_run_where_no_vllm_test_ran_fails_not_exit_5(tmp_path: Path) -> None:
    run = run_vllm_tests("", tmp_path, True, "--ignore-glob=*/vllm/test_*.py")
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.stdout + run.stderr
    assert "no vLLM test ran" in run.stdout
