"""A stand-in for the lent GPU host's Python environment, for the GPU suite's install test.

The H200 host runs Python 3.12 with a CUDA torch 2.11.0, transformers 5.17.0,
numpy 2.5.2 and the packages bench/gpu_wheels.py lists in HOST_HAS; the suite
installs what it lacks from `make gpu-wheels`' folder into an overlay venv in
front of them. Here the host is a Python 3.12 venv holding:

- **stand-ins**: metadata-only ``.dist-info`` folders (no code, INSTALLER
  ``voxmesh-stand-in``) for what is too large to install here or cannot be
  installed for 3.12 offline: torch (CUDA), triton, the ``nvidia-*`` and
  ``cuda-*`` libraries, and transformers at the host's version. Each carries
  the dependencies (``Requires-Dist``) of the release the folder was resolved
  with, so pip resolves the same tree it will on the host;
- **real packages**, installed from wheels: every other HOST_HAS package of
  that tree, at its resolved version, numpy 2.5.2 (above our cap: the
  overlay's 2.3.5 must come first) and setuptools.

``python tests/deploy/gpu_host.py pins RESOLVED.json`` prints the real
packages' ``name==version`` (``make gpu-host``, mk/gpu-suite.mk, downloads
their wheels); ``build()`` makes the venv from them with no network.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from gpu_wheels import HOST_HAS, canonical  # noqa: E402

#: What the lent H200 reports (read there in 2026-11; ENVIRONMENT.md): the versions its stand-ins
#: carry. A stand-in not named here takes the version the folder was resolved with.
HOST_VERSIONS = {"torch": "2.11.0", "transformers": "5.17.0"}
#: Too large (torch, CUDA) or not the point (transformers is only resolved against, never imported
#: by the install): metadata only.
STAND_IN = ("torch", "triton", "nvidia-*", "cuda-*", "transformers")
#: Real, beside the resolved tree: numpy at the host's version (above the project's cap), and
#: setuptools, which torch requires on Python 3.12 and pip's dry-run report leaves out.
HOST_EXTRA = ["numpy==2.5.2", "setuptools==84.2.1"]
INSTALLER = "voxmesh-stand-in"


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(canonical(name), p) for p in patterns)


def host_items(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The resolved metadata of every package of the folder's tree that the host is said to have."""
    return [item["metadata"] for item in report["install"] if _matches(item["metadata"]["name"], HOST_HAS)]


def real_pins(report: dict[str, Any]) -> list[str]:
    pins = {
        canonical(m["name"]): m["version"] for m in host_items(report) if not _matches(m["name"], STAND_IN)
    }
    return sorted(f"{name}=={version}" for name, version in pins.items()) + HOST_EXTRA


def stand_ins(report: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    """Each metadata-only package: name → (version, Requires-Dist)."""
    return {
        canonical(m["name"]): (
            HOST_VERSIONS.get(canonical(m["name"]), m["version"]),
            m.get("requires_dist") or [],
        )
        for m in host_items(report)
        if _matches(m["name"], STAND_IN)
    }


def write_stand_in(site: Path, name: str, version: str, requires: list[str]) -> None:
    info = site / f"{re.sub(r'[-_.]+', '_', name)}-{version}.dist-info"
    info.mkdir()
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
             "Summary: stand-in for the GPU host's package: metadata only (tests/deploy/gpu_host.py)",
             *(f"Requires-Dist: {r}" for r in requires)]  # fmt: skip
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    (info / "INSTALLER").write_text(INSTALLER + "\n")
    (info / "RECORD").write_text("")


def pip_env() -> dict[str, str]:
    """The environment for pip: no configuration file, no PIP_* settings and no proxy of this machine.

    This machine's pip configuration adds find-links (/opt/wheels) and a constraints file, which
    the GPU host has not: a wheel missing from the suite's folder could be found there.
    """
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("PIP_", "PYTHON"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def build(python312: Path, wheels: Path, report: dict[str, Any], dest: Path) -> Path:
    """Make the stand-in host venv at dest with no network; returns its python."""
    subprocess.run([str(python312), "-m", "venv", str(dest)], check=True, capture_output=True)
    python = dest / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-index", "--no-deps",
         "--no-compile", *sorted(str(w) for w in wheels.glob("*.whl"))],
        check=True, capture_output=True, text=True, env=pip_env(),
    )  # fmt: skip
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )  # fmt: skip
    for name, (version, requires) in stand_ins(report).items():
        write_stand_in(site, name, version, requires)
    return python


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] != "pins":
        raise SystemExit(f"usage: {sys.argv[0]} pins RESOLVED.json")
    print("\n".join(real_pins(json.loads(Path(sys.argv[2]).read_text()))))


if __name__ == "__main__":
    main()
