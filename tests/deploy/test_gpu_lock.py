"""docker/requirements-gpu.lock agrees with pyproject.toml, and its CUDA is what the image and docs say.

The lock is made by `make gpu-lock` (uv pip compile against PyPI for the
image's Python 3.12 on x86_64); this test is offline: after a change to
pyproject.toml's dependencies it fails until the lock is made again.
"""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy import ROOT
from voxmesh.gpu_driver import MINIMUM_DRIVER

LOCK = ROOT / "docker" / "requirements-gpu.lock"


def locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_every_requirement_of_the_gpu_image_is_locked_at_a_version_it_allows() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = [
        *project["project"]["dependencies"],
        *project["project"]["optional-dependencies"]["gpu"],
        *project["project"]["optional-dependencies"]["cpu"],
        *project["build-system"]["requires"],
    ]
    pins = locked()
    for text in wanted:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(
            {"python_version": "3.12", "sys_platform": "linux"}
        ):
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in the lock: run make gpu-lock"
        assert req.specifier.contains(pins[name], prereleases=True), f"{text}: locked {pins[name]}"
    assert all(re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", v) for v in pins.values()), "every line is an exact pin"


def test_the_lock_is_the_cuda_major_of_the_image_base_and_driver_check() -> None:
    pins = locked()
    assert "torch" in pins
    toolkit_major = int(pins["cuda-toolkit"].split(".")[0])
    assert any(name.endswith("-cu13") for name in pins)
    base = re.search(
        r"^ARG CUDA_IMAGE=nvidia/cuda:(\d+)\.", (ROOT / "docker" / "Dockerfile").read_text(), re.M
    )
    assert base is not None and int(base.group(1)) == toolkit_major
    assert toolkit_major in MINIMUM_DRIVER
    assert "nvidia-ml-py" in pins  # the driver check and the GPU memory gauges read NVML
