"""docs/deploy.md's commands work as written, as far as they can run here.

Each shell block is read from the page: the `helm install` is rendered (same
flags) and validated, the compose commands name files that exist, the image
targets exist in the Dockerfile, the `voxmesh` commands parse with the real
command line, and the memory table is the one `voxmesh.card_profiles` computes.
"""

from __future__ import annotations

import itertools
import re
import shlex

import pytest

from tests.deploy import ROOT
from tests.deploy.test_compose import _stages
from tests.deploy.test_helm import HELM, KUBE_VERSIONS, by_kind, kubernetes_validate, render
from voxmesh.card_profiles import table
from voxmesh.cli import build_parser

DOC = ROOT / "docs" / "deploy.md"
README = ROOT / "README.md"
ENV = {"$HF_TOKEN": "hf_test_only", "$VOXMESH_AUTH_TOKEN": "test-token"}


def commands() -> list[list[str]]:
    """Every command line of the page's bash blocks, continuations joined, comments dropped."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", DOC.read_text(), re.DOTALL):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = line.split("  #", 1)[0].strip().removesuffix("&").strip()
            if line and not line.startswith("#"):
                out.append(shlex.split(line))
    return out


def helm_install_args(install: list[str]) -> list[str]:
    """A documented `helm install RELEASE CHART ...` as `helm template` flags, variables filled in."""
    assert (ROOT / install[3]).resolve() == (ROOT / "helm" / "voxmesh").resolve()
    args = [ENV.get(a, a) for a in install[4:] if a != "--create-namespace"]
    args = [a.replace("=$HF_TOKEN", "=hf_test_only").replace("=$VOXMESH_AUTH_TOKEN", "=t") for a in args]
    return ["--namespace" if a == "-n" else a for a in args]


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_the_helm_install_renders_valid_kubernetes_with_a_selected_service_monitor(version: str) -> None:
    helm = HELM
    assert helm.is_file(), f"{helm} is missing: run make .tools/helm"
    (install,) = [c for c in commands() if c[:2] == ["helm", "install"]]
    release = install[2]
    docs = render(
        helm,
        *helm_install_args(install),
        "--kube-version",
        version,
        "--api-versions",
        "monitoring.coreos.com/v1",
    )
    kubernetes_validate(docs, version)
    (monitor,) = by_kind(docs, "ServiceMonitor").values()
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # `render` names the release "vm": the page's port-forward names the service of its own release.
    services = {name.replace("vm-voxmesh", release) for name in by_kind(docs, "Service")}
    for command in commands():
        if command[:1] == ["kubectl"] and "port-forward" in command:
            assert command[command.index("port-forward") + 1].removeprefix("svc/") in services


def test_compose_commands_name_files_that_exist() -> None:
    seen = 0
    for command in commands():
        if command[:2] != ["docker", "compose"]:
            continue
        # Global options come before the subcommand (`logs -f` means follow).
        options = list(itertools.takewhile(lambda a: a not in ("up", "ps", "logs", "down"), command))
        for i, arg in enumerate(options):
            if arg in ("-f", "--env-file"):
                assert (ROOT / options[i + 1]).is_file(), options[i + 1]
                seen += 1
    assert seen >= 4


def test_image_targets_exist() -> None:
    stages = _stages((ROOT / "docker" / "Dockerfile").read_text())
    targets = [c[c.index("--target") + 1] for c in commands() if c[:2] == ["docker", "build"]]
    assert set(targets) == {"cpu", "gpu", "allinone"}
    assert set(targets) <= set(stages)


def test_voxmesh_commands_parse() -> None:
    parser = build_parser()
    parsed = [c for c in commands() if c[:1] == ["voxmesh"]]
    assert any(c[1] == "talk" for c in parsed)
    for command in parsed:
        parser.parse_args([ENV.get(a, a) for a in command[1:]])


def test_the_memory_table_is_the_computed_one() -> None:
    assert table() in DOC.read_text()


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_the_readme_helm_install_renders_valid_kubernetes(version: str) -> None:
    installs = [shlex.split(c) for c in re.findall(r"`(helm install [^`]*)`", README.read_text())]
    assert installs, "the README's Deploy section names a helm install"
    for install in installs:
        kubernetes_validate(render(HELM, *helm_install_args(install), "--kube-version", version), version)


def test_every_file_the_docs_cite_is_in_the_repository() -> None:
    # docs/deploy.md cited DESIGN.md, a design card that never shipped with the repository.
    for doc in (DOC, README, ROOT / "BENCHMARKS.md"):
        for name in set(re.findall(r"[\w./-]+\.md\b", doc.read_text())):
            assert (ROOT / name).is_file() or (doc.parent / name).is_file(), f"{doc.name} cites {name}"


def section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end >= 0 else len(text)]


def test_known_limits_are_not_the_fixed_ones() -> None:
    text = " ".join(DOC.read_text().split())
    health = build_parser().parse_args(["health", "--tls-ca=ca.crt", "--tls-cert=c", "--tls-key=k"])
    assert health.tls_ca == "ca.crt", "voxmesh health checks over TLS"
    assert not re.search(r"`voxmesh health`[^.]*speaks? plaintext", text), "voxmesh health has --tls-*"
    # gateway/placement.py keeps a channel per replica and places each session itself.
    assert not re.search(r"one (gRPC )?channel", text), "the gateway keeps a channel per replica"


def test_runpod_says_grpc_needs_a_public_ip_and_its_port_moves() -> None:
    runpod = " ".join(section(DOC.read_text(), "## 1. RunPod").split())
    assert "public IP" in runpod
    assert re.search(r"port[^.]*changes[^.]*reset", runpod), (
        "the external TCP port changes when the pod resets"
    )
    deploy = " ".join(section(README.read_text(), "## Deploy").split())
    assert re.search(r"50051[^.]*public IP", deploy)
