"""The package as users install it: the wheel, in a fresh venv, run from outside the repository.

Every other test runs on the editable install from the repository root, where
an import by folder (``from services.orpheus...``) still resolves: the
all-in-one image died at start on exactly that. Here the wheel is built from
the files a clean clone has, installed (not editable) into a new venv, and
every module and every entry point the deploy files and docs name runs from a
directory that is not the repository.

The new venv borrows its dependencies from the dev venv (a path line in a
``.pth`` file: only the dependencies, the dev venv's editable ``voxmesh``
finder is a ``.pth`` of its own and is not processed through a path line), so
the test needs no second 2 GB install; the wheel's own declared requirements
are checked with ``pip check``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

from voxmesh.processes import free_port

ROOT = Path(__file__).resolve().parents[2]

#: Where users are told what to run: images, compose, the chart, the README and the docs.
NAMING_FILES = [
    ROOT / "docker" / "Dockerfile",
    *sorted((ROOT / "compose").glob("*.yml")),
    *sorted((ROOT / "helm" / "voxmesh").rglob("*.yaml")),
    ROOT / "helm" / "voxmesh" / "templates" / "NOTES.txt",
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "Makefile",
    *sorted((ROOT / "mk").glob("*.mk")),
]

# `python -m voxmesh.x` in prose and shell, and ["python", "-m", "voxmesh.x"] in JSON/YAML arrays.
MODULE_RUN = re.compile(r"""python3?["']?\s*,?\s*["']?-m["']?\s*,?\s*["']?(voxmesh(?:\.\w+)+|voxmesh)\b""")
# `voxmesh <subcommand>` in command lines (_command_lines).
FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.S)
JSON_ARGS = re.compile(r'"\s*,\s*"')
INLINE = re.compile(r"`([^`\n]+)`")
INLINE_COMMAND = re.compile(r"(?:\S*/)?voxmesh [a-z][a-z-]*(?:\s.*)?")
SUBCOMMAND = re.compile(r"(?:^|[\s/;(|&\"\[])voxmesh ([a-z][a-z-]*)")


@dataclass(frozen=True)
class Installed:
    python: Path
    voxmesh: Path
    site_packages: Path
    cwd: Path

    def run(self, *args: str | Path, timeout: float = 120.0, env: dict[str, str] | None = None):
        return subprocess.run(
            [str(a) for a in args],
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**_clean_env(), **(env or {})},
        )


def _clean_env() -> dict[str, str]:
    # Nothing may lead back to the source tree: no PYTHONPATH, no dev venv on PATH.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT))
    )
    return env


def _shipped_files() -> list[str]:
    """What a clean clone has: tracked files plus new files git does not ignore."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    return [f for f in out.decode().split("\0") if f and (ROOT / f).is_file()]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    for rel in _shipped_files():
        dest = src / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest)
    dist = work / "dist"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            "-w",
            dist,
            src,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, f"pip wheel failed:\n{build.stdout}\n{build.stderr}"
    (wheel,) = dist.glob("voxmesh-*.whl")

    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", wheel],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, f"installing {wheel.name} failed:\n{install.stderr}"
    site_packages = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site_packages / "voxmesh-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    cwd = work / "elsewhere"
    cwd.mkdir()
    return Installed(python, venv / "bin" / "voxmesh", site_packages, cwd)


def test_the_package_imports_from_the_installed_wheel_not_the_source_tree(installed: Installed) -> None:
    out = installed.run(
        installed.python,
        "-c",
        "import voxmesh, voxmesh.services, voxmesh.gateway as g; print(voxmesh.__file__); print(g.__file__)",
    )
    assert out.returncode == 0, out.stderr
    for line in out.stdout.split():
        assert Path(line).is_relative_to(installed.site_packages), (
            f"imported from {line}, not the installed wheel"
        )
    # The source folders are not importable as top-level packages once installed.
    folders = installed.run(installed.python, "-c", "import services")
    assert folders.returncode != 0 and "No module named 'services'" in folders.stderr


def test_every_module_of_the_package_imports(installed: Installed) -> None:
    script = """
import importlib, json, pkgutil, traceback
import voxmesh
failed = {}
names = [m.name for m in pkgutil.walk_packages(voxmesh.__path__, "voxmesh.")]
for name in names:
    try:
        importlib.import_module(name)
    except BaseException:
        failed[name] = traceback.format_exc(limit=3)
print(json.dumps({"names": names, "failed": failed}))
"""
    out = installed.run(installed.python, "-c", script, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # The package's parts, from the wheel: the stage services, the gateway, the stubs, the edge.
    for expected in (
        "voxmesh.services.orpheus.settings",
        "voxmesh.services.voxtral.vllm_engine",
        "voxmesh.gateway.session",
        "voxmesh.v1.conversation_pb2_grpc",
        "voxmesh.card_profiles",
    ):
        assert expected in result["names"], f"{expected} is not in the wheel"
    assert not result["failed"], "\n".join(f"{n}:\n{tb}" for n, tb in result["failed"].items())


def test_the_wheel_carries_its_data_files(installed: Installed) -> None:
    out = installed.run(
        installed.python,
        "-c",
        "from importlib.resources import files; r = files('voxmesh'); "
        "print(*[p.name for p in (r / 'realtime' / 'page').iterdir()]); "
        "print((r / 'py.typed').is_file(), (r / 'v1' / 'conversation_pb2.pyi').is_file())",
    )
    assert out.returncode == 0, out.stderr
    page, typed = out.stdout.strip().splitlines()
    assert "index.html" in page.split(), f"the Realtime edge's page is not in the wheel: {page}"
    assert typed == "True True", "py.typed or the .pyi stubs are missing from the wheel"


def _named_modules() -> dict[str, list[str]]:
    named: dict[str, list[str]] = {}
    for path in NAMING_FILES:
        for module in MODULE_RUN.findall(path.read_text()):
            named.setdefault(module, []).append(str(path.relative_to(ROOT)))
    return named


def _command_lines(path: Path) -> list[str]:
    """The lines of a file that are commands: shell in the docs' fenced blocks, recipes, image and pod commands."""
    text = path.read_text()
    if path.suffix == ".md":
        lines = [line for block in FENCE.findall(text) for line in block.splitlines()]
        # `voxmesh bench [--sessions …]` in tables and prose; not output quoted in prose ("`voxmesh is up:`").
        lines += [
            span for span in INLINE.findall(text) if INLINE_COMMAND.fullmatch(span) and not span.endswith(":")
        ]
    elif path.name == "NOTES.txt":
        lines = [line for line in text.splitlines() if line.startswith("  ")]  # the indented commands
    elif path.name == "Makefile" or path.suffix == ".mk":
        # Recipes that run the installed command (`mypy voxmesh services` names folders).
        lines = [line for line in text.splitlines() if line.startswith("\t") and "bin/voxmesh " in line]
    else:
        lines = text.splitlines()
    lines = [line for line in lines if not line.lstrip().startswith("#")]
    # ["voxmesh", "health", ...] arrays read as the command they run.
    return [JSON_ARGS.sub(" ", line) for line in lines]


def _named_subcommands() -> dict[str, list[str]]:
    named: dict[str, list[str]] = {}
    for path in NAMING_FILES:
        for line in _command_lines(path):
            for sub in SUBCOMMAND.findall(line):
                named.setdefault(sub, []).append(str(path.relative_to(ROOT)))
    return named


def test_every_python_m_entry_point_the_deploy_files_and_docs_name_runs(installed: Installed) -> None:
    named = _named_modules()
    # The two the images run: auth-init (compose) and the all-in-one entry point.
    assert {"voxmesh.auth_files", "voxmesh.card_profiles"} <= named.keys(), named
    for module, where in sorted(named.items()):
        out = installed.run(installed.python, "-m", module, "--help")
        assert out.returncode == 0 and "usage:" in out.stdout, (
            f"`python -m {module} --help` (named in {sorted(set(where))}) failed from the installed wheel:\n{out.stderr}"
        )


def test_every_voxmesh_subcommand_the_docs_name_exists_and_runs(installed: Installed) -> None:
    top = installed.run(installed.voxmesh, "--help")
    assert top.returncode == 0, top.stderr
    choices = re.search(r"\{([a-z,-]+)\}", top.stdout)
    assert choices, top.stdout
    subcommands = set(choices[1].split(","))
    named = _named_subcommands()
    assert {"serve", "up", "talk", "bench", "health"} <= named.keys(), named
    unknown = {sub: sorted(set(where)) for sub, where in named.items() if sub not in subcommands}
    assert not unknown, f"the docs name voxmesh subcommands the CLI does not have: {unknown}"
    for sub in sorted(subcommands):
        out = installed.run(installed.voxmesh, sub, "--help")
        assert out.returncode == 0 and "usage:" in out.stdout, f"voxmesh {sub} --help: {out.stderr}"
    serve = installed.run(installed.voxmesh, "serve", "--help")
    services = re.search(r"\{([a-z,-]+)\}", serve.stdout)
    assert services and {"vad", "voxtral", "orpheus", "gateway", "realtime"} <= set(services[1].split(","))
    for service in services[1].split(","):
        out = installed.run(installed.voxmesh, "serve", service, "--help")
        assert out.returncode == 0 and "usage:" in out.stdout, f"voxmesh serve {service} --help: {out.stderr}"


def test_auth_init_and_the_card_profiles_do_their_first_real_work(installed: Installed) -> None:
    auth = installed.cwd / "auth"
    out = installed.run(installed.python, "-m", "voxmesh.auth_files", auth)
    assert out.returncode == 0, out.stderr
    assert {"client-tokens", "stage-token"} <= {p.name for p in auth.iterdir()}, list(auth.iterdir())
    assert (auth / "stage-token").read_text().strip(), "auth-init wrote an empty stage token"

    table = installed.run(installed.python, "-m", "voxmesh.card_profiles")
    assert table.returncode == 0, table.stderr
    assert "24gb" in table.stdout and "80gb" in table.stdout, table.stdout
    # The all-in-one image's entry point picks a profile and execs the mesh command with it.
    execd = installed.run(
        installed.python,
        "-m",
        "voxmesh.card_profiles",
        "--exec",
        installed.python,
        "-c",
        "import os; print(os.environ['VOXMESH_VOXTRAL_GPU_MEMORY_UTILIZATION'])",
        env={"VOXMESH_GPU_MEMORY_PROFILE": "24gb"},
    )
    assert execd.returncode == 0, execd.stderr
    assert 0 < float(execd.stdout.strip().splitlines()[-1]) < 1, execd.stdout


def test_a_service_from_the_installed_wheel_serves_and_answers_health(installed: Installed) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [installed.voxmesh, "serve", "vad", "--port", str(port), "--metrics-port", "-1"],
        cwd=installed.cwd,
        env=_clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        health = None
        for _ in range(60):
            health = installed.run(installed.voxmesh, "health", f"127.0.0.1:{port}", "--timeout", "2")
            if health.returncode == 0 or proc.poll() is not None:
                break
        assert health is not None and health.returncode == 0, f"vad never answered SERVING: {health}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode == 0, f"vad did not stop cleanly on SIGTERM ({proc.returncode}):\n{out}"
