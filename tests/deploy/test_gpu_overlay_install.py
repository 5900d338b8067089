"""The GPU suite's install step against a stand-in GPU host (issue 19, item 8).

bench/gpu_suite.sh installs, with no network, the wheels of `make gpu-wheels`
into an overlay venv that sees the GPU host's own packages behind its own. Here
the suite runs with ``--only install`` (the install step and the host part),
``--python`` at a Python 3.12 venv standing in for the lent H200
(tests/deploy/gpu_host.py: metadata-only stand-ins for torch 2.11.0, triton,
the CUDA libraries and transformers 5.17.0; real numpy 2.5.2 and the host's
small packages) and ``--wheels`` at the real folder (`make gpu-host`, a
prerequisite of `make test`, builds both).

pip runs with no configuration file (this machine's adds find-links and
constraints the host has not) and a proxy that refuses every connection: a
download would show, and fail.
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.gpu_host import HOST_HAS, HOST_VERSIONS, INSTALLER, build, canonical, pip_env

ROOT = Path(__file__).resolve().parents[2]
WHEELS = ROOT / ".whl" / "gpu-suite"
HOST = ROOT / ".whl" / "gpu-host"
LIMIT = 64 * 2**20
#: Where a connection would go: nothing listens on port 9 (discard) here.
DEAD_PROXY = "http://127.0.0.1:9"

#: Run in the overlay, from a folder outside the source tree: where each module comes from.
PROBE = """
import importlib, importlib.metadata as md, importlib.util, json, sys, sysconfig
found = {"purelib": sysconfig.get_paths()["purelib"], "sys_path": sys.path, "files": {}, "versions": {}}
# Imported for real (no torch needed); snac imports torch, which the stand-in host has only as metadata.
for name in ("voxmesh", "voxmesh.v1", "numpy", "mistral_common.audio", "grpc", "soundfile", "soxr",
             "pydantic_settings", "espeakng_loader", "pytest", "yaml", "requests"):
    found["files"][name] = importlib.import_module(name).__file__
found["files"]["snac"] = importlib.util.find_spec("snac").origin
import numpy
found["numpy"] = numpy.__version__
for name in ("voxmesh", "snac", "mistral-common", "numpy", "torch", "transformers", "triton", "pyyaml"):
    dist = md.distribution(name)
    found["versions"][name] = {"version": dist.version, "at": str(dist.locate_file("")),
                               "installer": (dist.read_text("INSTALLER") or "").strip(),
                               "editable": dist.read_text("direct_url.json") is not None}
print(json.dumps(found))
"""


def require_prepared() -> None:
    for path, target in ((WHEELS / ".complete", "make gpu-wheels"), (HOST / ".complete", "make gpu-host")):
        if not path.exists():
            pytest.fail(f"{path.relative_to(ROOT)} is missing: run {target}", pytrace=False)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stand-in host's python (a fresh venv per run: the test also checks nothing of it changes)."""
    require_prepared()
    report = json.loads((WHEELS / "resolved.json").read_text())
    return build(HOST / "python3.12", HOST / "wheels", report, tmp_path_factory.mktemp("gpu-host") / "venv")


def offline_env() -> dict[str, str]:
    proxies = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy")
    env = {k: v for k, v in pip_env().items() if k.lower() != "no_proxy"}
    return {**env, **dict.fromkeys(proxies, DEAD_PROXY)}


def install(
    out: Path, host: Path, wheels: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    run = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_suite.sh"), "--only", "install", "--out", str(out),
         "--wheels", str(wheels), "--python", str(host), *args],
        env=offline_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return run, {p["part"]: p for p in json.loads((out / "summary.json").read_text())["parts"]}


def host_site(host: Path) -> Path:
    return Path(
        subprocess.run(
            [str(host), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )  # fmt: skip


def listing(site: Path) -> list[str]:
    return sorted(p.name for p in site.iterdir() if p.name != "__pycache__")


@pytest.mark.timeout(600)
def test_the_suite_installs_the_wheels_into_an_overlay_over_the_hosts_packages(
    host: Path, tmp_path: Path
) -> None:
    wheels = sorted(WHEELS.glob("*.whl"))
    total = sum(w.stat().st_size for w in wheels)
    assert total <= LIMIT, f"{total / 2**20:.1f} MiB of wheels: over the GPU host's 64 MiB"
    site = host_site(host)
    before = listing(site)
    overlay = tmp_path / "overlay"

    run, parts = install(tmp_path / "out", host, WHEELS, "--overlay", str(overlay))

    assert run.returncode == 0, run.stdout + run.stderr
    assert parts["install"]["outcome"] == "ok", parts["install"]
    assert f"gpu_suite: install: ok — from {WHEELS} into an overlay venv" in run.stdout
    assert parts["host"]["outcome"] == "ok" and set(parts) == {"install", "host"}
    log = (tmp_path / "out" / "install.log").read_text()
    (command,) = [line for line in log.splitlines() if line.startswith("+ ")]
    assert (
        " -m pip install " in command and " --no-index " in command and f" --find-links {WHEELS} " in command
    )
    # Nothing from the network: no index consulted, no URL, no retry through the dead proxy.
    for sign in ("Looking in indexes", "http://", "https://", "Retrying", "Downloading"):
        assert sign not in log, f"{sign!r} in install.log:\n{log}"
    assert "Successfully installed" in log and "voxmesh-0.1.0" in log

    found = json.loads(
        subprocess.run(
            [str(overlay / "bin" / "python"), "-c", PROBE],
            cwd=tmp_path, env=offline_env(), check=True, capture_output=True, text=True,
        ).stdout
    )  # fmt: skip
    mine, theirs = Path(found["purelib"]), site
    assert mine.is_relative_to(overlay)
    # The overlay's own site first, the host's behind it.
    paths = found["sys_path"]
    assert paths.index(str(mine)) < paths.index(str(theirs))
    files = {name: Path(file) for name, file in found["files"].items()}
    versions = found["versions"]
    # voxmesh from its wheel, in the overlay: not the source tree, not an editable install.
    assert files["voxmesh"].is_relative_to(mine) and not files["voxmesh"].is_relative_to(ROOT)
    assert files["voxmesh.v1"].is_relative_to(mine)  # the generated stubs come with the wheel
    assert versions["voxmesh"]["installer"] == "pip" and not versions["voxmesh"]["editable"]
    # What the host lacks (or has above the cap) comes from the overlay, from the folder.
    for module in (
        "snac",
        "mistral_common.audio",
        "numpy",
        "grpc",
        "soundfile",
        "soxr",
        "espeakng_loader",
        "pytest",
    ):
        assert files[module].is_relative_to(mine), (module, files[module])
    for dist in ("snac", "mistral-common", "numpy"):
        assert Path(versions[dist]["at"]) == mine, versions[dist]
    assert found["numpy"] == versions["numpy"]["version"] == "2.3.5"
    # The host's packages stay visible behind it: its stand-ins at the host's versions, its real ones.
    for dist, version in HOST_VERSIONS.items():
        assert versions[dist]["version"] == version and Path(versions[dist]["at"]) == theirs, versions[dist]
        assert versions[dist]["installer"] == INSTALLER
    assert Path(versions["triton"]["at"]) == theirs
    for module in ("yaml", "requests"):
        assert files[module].is_relative_to(theirs), (module, files[module])
    host_json = json.loads((tmp_path / "out" / "host.json").read_text())
    assert host_json["executable"] == str(overlay / "bin" / "python")
    assert {"torch==2.11.0", "transformers==5.17.0", "numpy==2.3.5", "numpy==2.5.2"} <= set(
        host_json["packages"]
    )
    # Nothing of the host changed: its numpy 2.5.2 is still there, behind the overlay's.
    assert listing(site) == before
    assert "numpy-2.5.2.dist-info" in before


@pytest.mark.timeout(300)
def test_a_missing_wheel_fails_the_install_with_pips_line_naming_it(host: Path, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for wheel in WHEELS.glob("*.whl"):
        if not wheel.name.startswith("snac-"):
            (wheels / wheel.name).symlink_to(wheel)

    run, parts = install(tmp_path / "out", host, wheels)

    assert run.returncode == 1, run.stdout + run.stderr
    why = parts["install"]["why"]
    assert parts["install"]["outcome"] == "failed", parts["install"]
    assert (
        why.startswith("ERROR: ")
        and "snac" in why
        and why.endswith(f"(install.log); running on {host} as it is")
    )
    assert f"gpu_suite: install: failed — {why}" in run.stdout
    assert parts["host"]["outcome"] == "ok"  # the suite goes on, on the host's python as it is


def test_the_stand_in_host_holds_only_what_the_host_is_said_to_have(host: Path) -> None:
    """Else the install test would pass on a package the folder should bring and does not."""
    names = {canonical(p.name.split("-")[0]) for p in host_site(host).glob("*.dist-info")}
    extra = {n for n in names if not any(fnmatch.fnmatch(n, p) for p in HOST_HAS)}
    assert extra == {"numpy", "pip"}, extra  # setuptools is in HOST_HAS
