"""The cpu image, built once for the whole image-test run."""

from __future__ import annotations

import re

import pytest

from tests.images.docker_cli import CPU_IMAGE, DOCKERFILE, build_cpu_image, docker


@pytest.fixture(scope="session")
def cpu_image() -> str:
    match = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match, "docker/Dockerfile lost its PYTHON_IMAGE argument"
    base = match.group(1)
    if not docker("image", "ls", "-q", base).strip():
        pytest.fail(f"no base image {base}: no registry is reachable here; `make base-image` makes it")
    seconds = build_cpu_image()
    print(f"\nbuilt {CPU_IMAGE} in {seconds:.1f} s")
    return CPU_IMAGE
