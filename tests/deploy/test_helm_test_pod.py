"""The chart's `helm test` pod: rendered and schema-checked, and its script run against a real CPU mesh.

The pod speaks an espeak utterance to the gateway with `voxmesh talk` and
fails unless a transcript and reply audio come back. Here the rendered
script runs as written on this machine (the only change: its working folder),
against the CPU mesh; once with the mesh's voxtral stopped, where it must fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.test_helm import kubernetes_validate, render
from tests.integration.conftest import Mesh, mesh, start_mesh  # noqa: F401  (fixtures)


def helm_test_pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    pods = [d for d in docs if d["kind"] == "Pod"]
    assert len(pods) == 1, [d["metadata"]["name"] for d in pods]
    return pods[0]


@pytest.fixture(scope="module")
def rendered(helm: Path) -> dict[str, Any]:
    return helm_test_pod(render(helm))


@pytest.fixture(scope="module")
def helm() -> Path:
    from tests.deploy.test_helm import HELM

    if not HELM.is_file():
        pytest.fail(f"{HELM} is missing: run make .tools/helm", pytrace=False)
    return HELM


def test_pod_is_a_helm_test_hook_that_talks_to_the_gateway(rendered: dict[str, Any], helm: Path) -> None:
    assert rendered["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = rendered["spec"]
    assert spec["restartPolicy"] == "Never"
    (container,) = spec["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["VOXMESH_TEST_GATEWAY"]["value"] == "vm-voxmesh-gateway:50051"
    assert env["VOXMESH_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    kubernetes_validate([rendered], "1.27.0")


def test_pod_uses_the_cpu_image_when_the_stages_run_on_gpus(helm: Path) -> None:
    pod = helm_test_pod(render(helm, "--set", "gpu.enabled=true"))
    assert pod["spec"]["containers"][0]["image"].endswith("-cpu")


def run_script(pod: dict[str, Any], gateway: str, folder: Path) -> subprocess.CompletedProcess[str]:
    container = pod["spec"]["containers"][0]
    command, script = container["command"], container["args"][0]
    assert script.startswith("cd /tmp\n")
    script = f"cd {folder}\n" + script.removeprefix("cd /tmp\n")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "VOXMESH_TEST_GATEWAY": gateway,
    }
    return subprocess.run([*command, script], env=env, capture_output=True, text=True, timeout=120)


def test_pod_script_passes_against_the_cpu_mesh(rendered: dict[str, Any], mesh: Mesh, tmp_path: Path) -> None:  # noqa: F811
    run = run_script(rendered, mesh.address, tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "PASS: transcript and reply audio came back" in run.stdout


def test_pod_script_fails_when_voxtral_is_down(rendered: dict[str, Any], mesh: Mesh, tmp_path: Path) -> None:  # noqa: F811
    mesh.voxtral.stop()
    run = run_script(rendered, mesh.address, tmp_path)
    assert run.returncode != 0, run.stdout
    assert "PASS" not in run.stdout
