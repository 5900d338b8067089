"""helm/voxmesh locked down: NetworkPolicies, a read-only root filesystem, the stage token
on every hop, and mutual TLS between the gateway and the stages.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.test_helm import (
    CHART,
    KUBE_VERSIONS,
    ROOT,
    STAGES,
    by_kind,
    container,
    env_of,
    helm,  # noqa: F401 - the fixture
    kubernetes_validate,
    render,
)

TLS = ["--set", "tls.enabled=true", "--set", "tls.secretName=voxmesh-mesh-tls"]


@pytest.fixture(scope="module")
def docs(helm: Path) -> list[dict[str, Any]]:  # noqa: F811
    return render(helm)


@pytest.fixture(scope="module")
def tls_docs(helm: Path) -> list[dict[str, Any]]:  # noqa: F811
    return render(helm, *TLS)


def deployment(docs: list[dict[str, Any]], stage: str) -> dict[str, Any]:
    return by_kind(docs, "Deployment")[f"vm-voxmesh-{stage}"]


def test_stages_accept_grpc_only_from_the_gateway(docs: list[dict[str, Any]]) -> None:
    policies = by_kind(docs, "NetworkPolicy")
    # And the Realtime edge's own (tests/deploy/test_edge_deploy.py).
    assert set(policies) == {f"vm-voxmesh-{stage}" for stage in STAGES} | {"vm-voxmesh-realtime"}
    for stage, (port, metrics_port) in STAGES.items():
        spec = policies[f"vm-voxmesh-{stage}"]["spec"]
        assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == stage
        assert spec["policyTypes"] == ["Ingress"]
        rules = {rule["ports"][0]["port"]: rule.get("from") for rule in spec["ingress"]}
        assert set(rules) == {port, metrics_port}, stage
        if stage == "gateway":
            assert rules[port] is None  # the public edge: anyone may open a session
        else:
            (peer,) = rules[port]
            assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"
            assert "namespaceSelector" not in peer
        (scraper,) = rules[metrics_port]
        assert scraper == {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
        }


def test_monitoring_namespace_and_gateway_peers_are_configurable(helm: Path) -> None:  # noqa: F811
    rendered = render(
        helm,
        "--set", "networkPolicy.monitoringNamespace=observability",
        "--set", "networkPolicy.gatewayFrom[0].ipBlock.cidr=10.0.0.0/8",
    )  # fmt: skip
    gateway = by_kind(rendered, "NetworkPolicy")["vm-voxmesh-gateway"]["spec"]["ingress"]
    # Then the Realtime edge's pods, a client of the gateway (tests/deploy/test_edge_deploy.py).
    assert gateway[0]["from"][0] == {"ipBlock": {"cidr": "10.0.0.0/8"}}
    assert (
        gateway[1]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        == "observability"
    )
    assert not by_kind(render(helm, "--set", "networkPolicy.enabled=false"), "NetworkPolicy")


def test_root_filesystem_is_read_only_with_a_writable_tmp(docs: list[dict[str, Any]]) -> None:
    for stage in STAGES:
        c = container(deployment(docs, stage))
        assert c["securityContext"]["readOnlyRootFilesystem"] is True, stage
        assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"], stage
        assert env_of(deployment(docs, stage))["HOME"] == "/tmp", stage


def test_every_stage_requires_the_token_the_gateway_presents(docs: list[dict[str, Any]]) -> None:
    (secret,) = by_kind(docs, "Secret").values()
    token = base64.b64decode(secret["data"]["VOXMESH_STAGE_AUTH_TOKEN"]).decode()
    assert len(token) >= 32
    presented = env_of(deployment(docs, "gateway"))["VOXMESH_GATEWAY_STAGE_AUTH_TOKEN"]
    assert presented["secretKeyRef"] == {
        "name": secret["metadata"]["name"],
        "key": "VOXMESH_STAGE_AUTH_TOKEN",
    }
    for stage in ("vad", "voxtral", "orpheus"):
        required = env_of(deployment(docs, stage))[f"VOXMESH_{stage.upper()}_AUTH_TOKEN"]
        assert required == presented, stage


def test_a_set_stage_token_is_used(helm: Path) -> None:  # noqa: F811
    (secret,) = by_kind(render(helm, "--set", "secrets.stageAuthToken=rotated-token"), "Secret").values()
    assert base64.b64decode(secret["data"]["VOXMESH_STAGE_AUTH_TOKEN"]) == b"rotated-token"


def test_mutual_tls_between_gateway_and_stages(tls_docs: list[dict[str, Any]]) -> None:
    gateway = deployment(tls_docs, "gateway")
    env = env_of(gateway)
    assert env["VOXMESH_GATEWAY_STAGE_TLS_CA"] == "/etc/voxmesh/tls/ca.crt"
    assert env["VOXMESH_GATEWAY_STAGE_TLS_CERT"] == "/etc/voxmesh/tls/tls.crt"
    assert env["VOXMESH_GATEWAY_STAGE_TLS_KEY"] == "/etc/voxmesh/tls/tls.key"
    assert env["VOXMESH_GATEWAY_STAGE_TLS_SERVER_NAME"] == "voxmesh-stages"
    assert "grpc" in container(gateway)["readinessProbe"]  # the gateway's own port stays plaintext
    for stage in ("vad", "voxtral", "orpheus"):
        d = deployment(tls_docs, stage)
        prefix = f"VOXMESH_{stage.upper()}_"
        env = env_of(d)
        assert env[prefix + "TLS_CA"] == "/etc/voxmesh/tls/ca.crt"
        assert env[prefix + "TLS_CERT"] == "/etc/voxmesh/tls/tls.crt"
        c = container(d)
        assert {"name": "tls", "mountPath": "/etc/voxmesh/tls", "readOnly": True} in c["volumeMounts"]
        volumes = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
        assert volumes["tls"]["secret"]["secretName"] == "voxmesh-mesh-tls"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            command = c[probe]["exec"]["command"]
            assert command[:2] == ["voxmesh", "health"], (stage, probe)
            assert "--tls-cert=/etc/voxmesh/tls/tls.crt" in command


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_tls_render_is_valid_kubernetes(helm: Path, version: str) -> None:  # noqa: F811
    kubernetes_validate(render(helm, "--kube-version", version, *TLS), version)


def test_tls_without_a_secret_is_refused(helm: Path) -> None:  # noqa: F811
    result = subprocess.run(
        [str(helm), "template", "vm", str(CHART), "--set", "tls.enabled=true"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "tls.secretName" in result.stderr


def test_client_tokens_secret_is_mounted_on_the_gateway_only(helm: Path) -> None:  # noqa: F811
    docs = render(helm, "--set", "secrets.clientTokensSecret=voxmesh-client-tokens")
    gateway = deployment(docs, "gateway")
    assert env_of(gateway)["VOXMESH_GATEWAY_AUTH_TOKENS_FILE"] == "/etc/voxmesh/client-tokens/tokens"
    mount = {"name": "client-tokens", "mountPath": "/etc/voxmesh/client-tokens", "readOnly": True}
    assert mount in container(gateway)["volumeMounts"]
    volumes = {v["name"]: v for v in gateway["spec"]["template"]["spec"]["volumes"]}
    assert volumes["client-tokens"]["secret"] == {
        "secretName": "voxmesh-client-tokens",
        "items": [{"key": "tokens", "path": "tokens"}],
    }
    for stage in ("vad", "voxtral", "orpheus"):
        assert "client-tokens" not in str(deployment(docs, stage)["spec"]["template"]["spec"])
    kubernetes_validate(docs, KUBE_VERSIONS[-1])
    # Off by default: no file, the single authToken as before.
    assert "VOXMESH_GATEWAY_AUTH_TOKENS_FILE" not in env_of(deployment(render(helm), "gateway"))


def test_per_client_limits_reach_the_gateway(helm: Path) -> None:  # noqa: F811
    docs = render(
        helm,
        *("--set", "gateway.maxSessionsPerClient=8", "--set", "gateway.maxInputMessagesPerClientS=800"),
    )
    env = env_of(deployment(docs, "gateway"))
    assert env["VOXMESH_GATEWAY_MAX_SESSIONS_PER_CLIENT"] == "8"
    assert env["VOXMESH_GATEWAY_MAX_INPUT_MESSAGES_PER_CLIENT_S"] == "800"
    defaults = env_of(deployment(render(helm), "gateway"))
    assert defaults["VOXMESH_GATEWAY_MAX_SESSIONS_PER_CLIENT"] == "0"
