"""The Pythons voxmesh supports install without a compiler, and any other stops `make` with one line.

The README promises that nothing needs a system package. That holds only while
every dependency of the lean install has a wheel for each supported Python:
pocketsphinx 5.1.1 has none for 3.12, so Ubuntu 24.04's default Python
compiled it from source. pip resolves the whole `cpu` install here for each
supported version with `--only-binary=:all:` (from PyPI, as a user's machine
would), so a release without wheels fails this test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SUPPORTED = ("3.11", "3.12", "3.13")
LINUX_X86_64 = [
    f"--platform={p}"
    for p in (
        "manylinux_2_28_x86_64",
        "manylinux_2_27_x86_64",
        "manylinux_2_17_x86_64",
        "manylinux2014_x86_64",
        "manylinux_2_12_x86_64",
        "manylinux2010_x86_64",
        "manylinux_2_5_x86_64",
        "manylinux1_x86_64",
        "linux_x86_64",
    )
]


def test_requires_python_is_the_supported_range() -> None:
    assert PYPROJECT["project"]["requires-python"] == ">=3.11,<3.14"


@pytest.mark.parametrize("version", SUPPORTED)
def test_the_lean_install_has_wheels_for_every_supported_python(version: str, tmp_path: Path) -> None:
    project = PYPROJECT["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["cpu"]]
    abi = "cp" + version.replace(".", "")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--quiet",
            "--disable-pip-version-check",
            "--ignore-installed",
            "--only-binary=:all:",
            f"--python-version={version}",
            "--implementation=cp",
            f"--abi={abi}",
            "--abi=abi3",
            "--abi=none",
            *LINUX_X86_64,
            f"--target={tmp_path / 'target'}",
            *requirements,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, f"the cpu install needs a compiler on Python {version}:\n{out.stderr[-3000:]}"


def test_make_stops_an_unsupported_python_with_one_line(tmp_path: Path) -> None:
    # No Python 3.10 is installed here: this stand-in answers make's version
    # probe as 3.10 would. Before the check, make read pyproject.toml with
    # tomllib (3.11+) and stopped with "could not read the vllm==X pin".
    old = tmp_path / "python3.10"
    old.write_text('#!/bin/sh\necho "3.10"\n')
    old.chmod(0o755)
    out = subprocess.run(
        ["make", "-n", "run", f"PYTHON={old}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MAKEFLAGS": ""},
    )
    assert out.returncode != 0
    errors = [line for line in out.stderr.splitlines() if "***" in line]
    assert len(errors) == 1, out.stderr
    assert re.search(r"needs Python 3\.11, 3\.12 or 3\.13; PYTHON=\S+ is 3\.10", errors[0]), errors[0]
    assert "vllm" not in out.stderr


def test_make_accepts_the_python_it_runs_on() -> None:
    out = subprocess.run(
        ["make", "-n", "run", f"PYTHON={sys.executable}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MAKEFLAGS": ""},
    )
    assert out.returncode == 0, out.stderr
    assert "voxmesh up" in out.stdout
