"""The OpenAI-Realtime WebSocket edge where users deploy: the all-in-one (RunPod) image,
compose, and the Helm chart. Rendered and checked offline, like the rest of tests/deploy;
compose's health check command is run against a real ``voxmesh serve realtime``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy import ROOT, load_yaml
from tests.deploy.test_compose import (  # noqa: F401 - fixtures
    COMPOSE_DIR,
    DOCKERFILE,
    _interpolated_default,
    _published,
    _stages,
    compose,
    cpu_compose,
    cpu_override,
)
from tests.deploy.test_helm import (
    CHART,
    KUBE_VERSIONS,
    by_kind,
    container,
    env_of,
    helm,  # noqa: F401 - the fixture
    kubernetes_validate,
    render,
    run_helm,
)
from voxmesh.processes import ServiceProcess, free_port
from voxmesh.realtime.readiness import wait_edge_serving
from voxmesh.realtime.settings import RealtimeSettings

EDGE = "vm-voxmesh-realtime"
PORT, METRICS_PORT = 8080, 9404


def realtime_settings() -> set[str]:
    return {f"VOXMESH_REALTIME_{name.upper()}" for name in RealtimeSettings.model_fields}


# --- the all-in-one image (RunPod) ---------------------------------------------


def test_allinone_image_exposes_the_edge_and_runs_it() -> None:
    body = _stages(DOCKERFILE.read_text())["allinone"]
    exposed = {int(p) for line in re.findall(r"^EXPOSE (.*)$", body, re.MULTILINE) for p in line.split()}
    assert {50051, PORT} <= exposed
    entrypoint = re.search(r"ENTRYPOINT (\[.*\])", body)
    assert entrypoint is not None
    # `voxmesh up` runs the edge unless told not to, on all interfaces (RunPod's proxy reaches it there).
    assert '"up"' in entrypoint.group(1) and "--no-realtime" not in entrypoint.group(1)
    assert '"--host", "0.0.0.0"' in entrypoint.group(1)


def test_runpod_template_exposes_8080_over_http() -> None:
    docs = (ROOT / "docs" / "deploy.md").read_text()
    runpod = docs.split("## 1. RunPod", 1)[1].split("\n## ", 1)[0]
    (http_row,) = [line for line in runpod.splitlines() if line.startswith("| Expose HTTP ports")]
    assert "`8080`" in http_row and "/v1/realtime" in http_row and "nothing listens" not in http_row
    assert '"8080/http,50051/tcp"' in runpod


# --- compose -------------------------------------------------------------------


def test_compose_runs_the_edge_in_front_of_the_gateway(compose: dict[str, Any]) -> None:  # noqa: F811
    service = compose["services"]["realtime"]
    assert service["image"] == "voxmesh:cpu" and service["build"]["target"] == "cpu"
    assert service["command"] == ["realtime"]
    env = service["environment"]
    assert set(env) <= realtime_settings(), set(env) - realtime_settings()
    assert env["VOXMESH_REALTIME_GATEWAY"] == "gateway:50051"
    assert env["VOXMESH_REALTIME_HOST"] == "0.0.0.0"
    assert (env["VOXMESH_REALTIME_PORT"], env["VOXMESH_REALTIME_METRICS_PORT"]) == (
        str(PORT),
        str(METRICS_PORT),
    )
    # The same client tokens as the gateway's: the port is public.
    assert env["VOXMESH_REALTIME_AUTH_TOKENS_FILE"] == "/var/lib/voxmesh/auth/client-tokens"
    assert _interpolated_default(env["VOXMESH_REALTIME_MAX_SESSIONS"]) == _interpolated_default(
        compose["services"]["gateway"]["environment"]["VOXMESH_GATEWAY_MAX_SESSIONS"]
    )
    assert _published(service) == {PORT: PORT, METRICS_PORT: METRICS_PORT}
    assert "8080:8080" in service["ports"]  # every interface, as the gateway's 50051
    assert f"${{VOXMESH_BIND:-127.0.0.1}}:{METRICS_PORT}:{METRICS_PORT}" in service["ports"]
    # Started, not healthy: `up -d` does not wait for the gateway either.
    assert service["depends_on"] == {"gateway": {"condition": "service_started"}}
    assert service["restart"] == "unless-stopped"


def test_cpu_override_sizes_the_edge_like_the_cpu_gateway(cpu_compose: dict[str, Any]) -> None:  # noqa: F811
    env = cpu_compose["services"]["realtime"]["environment"]
    assert _interpolated_default(env["VOXMESH_REALTIME_MAX_SESSIONS"]) == "32"
    assert cpu_compose["services"]["realtime"]["command"] == ["realtime"]


def test_prometheus_scrapes_the_edge() -> None:
    config = load_yaml((COMPOSE_DIR / "prometheus.yml").read_text())
    groups = [group for job in config["scrape_configs"] for group in job["static_configs"]]
    assert any(
        g["targets"] == [f"realtime:{METRICS_PORT}"] and g["labels"] == {"component": "realtime"}
        for g in groups
    )


def test_compose_health_check_passes_against_a_real_edge_and_fails_without_one(
    compose: dict[str, Any],  # noqa: F811
) -> None:
    test = compose["services"]["realtime"]["healthcheck"]["test"]
    assert test[0] == "CMD" and f"127.0.0.1:{PORT}/healthz" in " ".join(test)
    port = free_port()
    command = [sys.executable if arg == "python" else arg.replace(str(PORT), str(port)) for arg in test[1:]]
    # No gateway behind it: /healthz says the edge itself serves.
    edge = ServiceProcess("realtime", port, ["--metrics-port", "-1", f"--gateway=127.0.0.1:{free_port()}"])
    try:
        wait_edge_serving(edge.start())
        assert subprocess.run(command, capture_output=True, timeout=30, check=False).returncode == 0
    finally:
        edge.stop()
    assert subprocess.run(command, capture_output=True, timeout=30, check=False).returncode != 0


# --- Helm ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs(helm: Path) -> list[dict[str, Any]]:  # noqa: F811
    return render(helm, "--set", "secrets.authToken=client-token")


def test_chart_runs_the_edge_against_the_gateway_service(docs: list[dict[str, Any]]) -> None:
    deployment = by_kind(docs, "Deployment")[EDGE]
    c = container(deployment)
    assert c["image"].endswith("-cpu") and c["args"] == ["realtime"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": PORT, "metrics": METRICS_PORT}
    env = env_of(deployment)
    assert {k for k in env if k.startswith("VOXMESH_REALTIME_")} <= realtime_settings()
    assert env["VOXMESH_REALTIME_GATEWAY"] == "vm-voxmesh-gateway:50051"
    assert env["VOXMESH_REALTIME_HOST"] == "0.0.0.0"
    # The gateway's client token, from the same Secret key the gateway reads.
    gateway_token = env_of(by_kind(docs, "Deployment")["vm-voxmesh-gateway"])["VOXMESH_GATEWAY_AUTH_TOKEN"]
    assert env["VOXMESH_REALTIME_AUTH_TOKEN"] == gateway_token
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"] and env["HOME"] == "/tmp"


def test_edge_service_serves_http_and_metrics(helm: Path, docs: list[dict[str, Any]]) -> None:  # noqa: F811
    service = by_kind(docs, "Service")[EDGE]
    assert service["spec"]["type"] == "ClusterIP"
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports == {"http": (PORT, "http"), "metrics": (METRICS_PORT, "metrics")}
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "realtime"
    exposed = render(
        helm,
        "--set", "realtime.service.type=LoadBalancer",
        "--set", "realtime.service.nodePort=30080",
        "--set", "realtime.service.loadBalancerSourceRanges[0]=203.0.113.0/24",
    )  # fmt: skip
    spec = by_kind(exposed, "Service")[EDGE]["spec"]
    assert spec["type"] == "LoadBalancer" and spec["loadBalancerSourceRanges"] == ["203.0.113.0/24"]
    assert spec["ports"][0]["nodePort"] == 30080


def test_network_policies_let_the_edge_reach_the_gateway(helm: Path, docs: list[dict[str, Any]]) -> None:  # noqa: F811
    policy = by_kind(docs, "NetworkPolicy")[EDGE]["spec"]
    rules = {rule["ports"][0]["port"]: rule.get("from") for rule in policy["ingress"]}
    assert rules[PORT] is None  # a public door, like the gateway's
    assert rules[METRICS_PORT][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    restricted = render(
        helm,
        "--set", "networkPolicy.gatewayFrom[0].ipBlock.cidr=10.0.0.0/8",
        "--set", "networkPolicy.realtimeFrom[0].ipBlock.cidr=192.168.0.0/16",
    )  # fmt: skip
    policies = by_kind(restricted, "NetworkPolicy")
    gateway_from = policies["vm-voxmesh-gateway"]["spec"]["ingress"][0]["from"]
    edge_pod = by_kind(restricted, "Deployment")[EDGE]["spec"]["template"]["metadata"]["labels"]
    # (and the `helm test` pod's: tests/deploy/test_helm_values.py)
    (edge_peer,) = [
        p
        for p in gateway_from
        if p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component") == "realtime"
    ]
    assert edge_peer["podSelector"]["matchLabels"].items() <= edge_pod.items()
    assert edge_peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "realtime"
    assert policies[EDGE]["spec"]["ingress"][0]["from"] == [{"ipBlock": {"cidr": "192.168.0.0/16"}}]


def test_realtime_disabled_renders_no_edge(helm: Path) -> None:  # noqa: F811
    docs = render(
        helm,
        "--set",
        "realtime.enabled=false",
        "--set",
        "networkPolicy.gatewayFrom[0].ipBlock.cidr=10.0.0.0/8",
    )
    assert not [d for d in docs if d["metadata"]["name"] == EDGE]
    gateway_from = by_kind(docs, "NetworkPolicy")["vm-voxmesh-gateway"]["spec"]["ingress"][0]["from"]
    assert gateway_from[0] == {"ipBlock": {"cidr": "10.0.0.0/8"}}
    assert "realtime" not in str(gateway_from)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_edge_renders_valid_kubernetes(helm: Path, version: str) -> None:  # noqa: F811
    docs = render(
        helm,
        "--kube-version", version,
        "--set", "gpu.enabled=true",
        "--set", "realtime.service.type=NodePort",
        "--set", "realtime.maxSessions=16",
        "--set", "realtime.extraEnv.VOXMESH_REALTIME_SEND_TIMEOUT_S=5",
    )  # fmt: skip
    env = env_of(by_kind(docs, "Deployment")[EDGE])
    assert env["VOXMESH_REALTIME_MAX_SESSIONS"] == "16" and env["VOXMESH_REALTIME_SEND_TIMEOUT_S"] == "5"
    kubernetes_validate(docs, version)


def test_install_notes_say_how_to_reach_the_page(helm: Path) -> None:  # noqa: F811
    notes = run_helm(helm, "install", "vm", str(CHART), "-n", "voice", "--dry-run=client").split("NOTES:", 1)[
        1
    ]
    assert f"kubectl -n voice port-forward svc/{EDGE} {PORT}:{PORT} &" in notes
    assert f'websocket_base_url="ws://127.0.0.1:{PORT}/v1"' in notes
    off = run_helm(helm, "install", "vm", str(CHART), "--dry-run=client", "--set", "realtime.enabled=false")
    assert f"svc/{EDGE}" not in off.split("NOTES:", 1)[1]
