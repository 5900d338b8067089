"""The phone edge where users deploy it: compose (a service) and the chart (a template, off by default).

Rendered and checked offline like the rest of tests/deploy; compose's health
check command is run against a real ``voxmesh serve telephony``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy import load_yaml
from tests.deploy.test_compose import (  # noqa: F401 - fixtures
    COMPOSE_DIR,
    _interpolated_default,
    _published,
    compose,
    cpu_compose,
    cpu_override,
)
from tests.deploy.test_helm import (
    KUBE_VERSIONS,
    by_kind,
    container,
    env_of,
    helm,  # noqa: F401 - the fixture
    kubernetes_validate,
    render,
)
from voxmesh.processes import ServiceProcess, free_port
from voxmesh.realtime.readiness import wait_edge_serving
from voxmesh.telephony.settings import TELEPHONY_METRICS_PORT, TELEPHONY_PORT, TelephonySettings

EDGE = "vm-voxmesh-telephony"
PORT, METRICS_PORT = TELEPHONY_PORT, TELEPHONY_METRICS_PORT
ON = ("--set", "telephony.enabled=true", "--set", "secrets.authToken=client-token")


def settings() -> set[str]:
    return {f"VOXMESH_TELEPHONY_{name.upper()}" for name in TelephonySettings.model_fields}


def test_compose_runs_the_phone_edge_in_front_of_the_gateway(compose: dict[str, Any]) -> None:  # noqa: F811
    service = compose["services"]["telephony"]
    assert service["command"] == ["telephony"]
    env = service["environment"]
    assert set(env) <= settings(), set(env) - settings()
    assert env["VOXMESH_TELEPHONY_GATEWAY"] == "gateway:50051" and env["VOXMESH_TELEPHONY_HOST"] == "0.0.0.0"
    assert _published(service) == {PORT: PORT, METRICS_PORT: METRICS_PORT}
    assert service["depends_on"]["gateway"]["condition"] == "service_started"


def test_cpu_override_sizes_the_phone_edge_like_the_cpu_gateway(cpu_compose: dict[str, Any]) -> None:  # noqa: F811
    env = cpu_compose["services"]["telephony"]["environment"]
    assert _interpolated_default(env["VOXMESH_TELEPHONY_MAX_SESSIONS"]) == "32"


def test_prometheus_scrapes_the_phone_edge() -> None:
    config = load_yaml((COMPOSE_DIR / "prometheus.yml").read_text())
    groups = [group for job in config["scrape_configs"] for group in job["static_configs"]]
    assert any(
        g["targets"] == [f"telephony:{METRICS_PORT}"] and g["labels"] == {"component": "telephony"}
        for g in groups
    )


def test_compose_health_check_passes_against_a_real_phone_edge(compose: dict[str, Any]) -> None:  # noqa: F811
    test = compose["services"]["telephony"]["healthcheck"]["test"]
    assert test[0] == "CMD" and f"127.0.0.1:{PORT}/healthz" in " ".join(test)
    port = free_port()
    command = [sys.executable if arg == "python" else arg.replace(str(PORT), str(port)) for arg in test[1:]]
    edge = ServiceProcess("telephony", port, ["--metrics-port", "-1", f"--gateway=127.0.0.1:{free_port()}"])
    try:
        wait_edge_serving(edge.start())
        assert subprocess.run(command, capture_output=True, timeout=30, check=False).returncode == 0
    finally:
        edge.stop()
    assert subprocess.run(command, capture_output=True, timeout=30, check=False).returncode != 0


def test_chart_has_no_phone_edge_unless_enabled(helm: Path) -> None:  # noqa: F811
    docs = render(helm, "--set", "networkPolicy.gatewayFrom[0].ipBlock.cidr=10.0.0.0/8")
    assert not [d for d in docs if d["metadata"]["name"] == EDGE]
    gateway_from = by_kind(docs, "NetworkPolicy")["vm-voxmesh-gateway"]["spec"]["ingress"][0]["from"]
    assert "telephony" not in str(gateway_from)


def test_chart_runs_the_phone_edge_against_the_gateway(helm: Path) -> None:  # noqa: F811
    docs = render(helm, *ON, "--set", "networkPolicy.gatewayFrom[0].ipBlock.cidr=10.0.0.0/8")
    deployment = by_kind(docs, "Deployment")[EDGE]
    c = container(deployment)
    assert c["image"].endswith("-cpu") and c["args"] == ["telephony"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": PORT, "metrics": METRICS_PORT}
    env = env_of(deployment)
    assert {k for k in env if k.startswith("VOXMESH_TELEPHONY_")} <= settings()
    assert env["VOXMESH_TELEPHONY_GATEWAY"] == "vm-voxmesh-gateway:50051"
    gateway_token = env_of(by_kind(docs, "Deployment")["vm-voxmesh-gateway"])["VOXMESH_GATEWAY_AUTH_TOKEN"]
    assert env["VOXMESH_TELEPHONY_AUTH_TOKEN"] == gateway_token
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    service = by_kind(docs, "Service")[EDGE]
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"http": PORT, "metrics": METRICS_PORT}
    # The gateway admits the phone edge's pods past networkPolicy.gatewayFrom.
    policies = by_kind(docs, "NetworkPolicy")
    gateway_from = policies["vm-voxmesh-gateway"]["spec"]["ingress"][0]["from"]
    pod = deployment["spec"]["template"]["metadata"]["labels"]
    (peer,) = [
        p
        for p in gateway_from
        if p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component") == "telephony"
    ]
    assert peer["podSelector"]["matchLabels"].items() <= pod.items()
    assert policies[EDGE]["spec"]["ingress"][0]["ports"][0]["port"] == PORT


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_phone_edge_renders_valid_kubernetes(helm: Path, version: str) -> None:  # noqa: F811
    docs = render(
        helm, "--kube-version", version, *ON,
        "--set", "telephony.service.type=LoadBalancer",
        "--set", "telephony.maxSessions=16",
        "--set", "networkPolicy.telephonyFrom[0].ipBlock.cidr=203.0.113.0/24",
    )  # fmt: skip
    env = env_of(by_kind(docs, "Deployment")[EDGE])
    assert env["VOXMESH_TELEPHONY_MAX_SESSIONS"] == "16"
    assert by_kind(docs, "NetworkPolicy")[EDGE]["spec"]["ingress"][0]["from"] == [
        {"ipBlock": {"cidr": "203.0.113.0/24"}}
    ]
    kubernetes_validate(docs, version)
