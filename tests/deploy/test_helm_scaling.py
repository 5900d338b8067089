"""helm/voxmesh scaling out: headless Services the gateway resolves, PDBs,
preStop and a grace that fits, KEDA ScaledObjects on sessions in use /
capacity. Rendered with the chart's helm (see test_helm.py) and validated.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.test_dashboards import exported_metric_names, metric_names
from tests.deploy.test_helm import CHART, KUBE_VERSIONS, by_kind, container, env_of, render, run_helm
from tests.deploy.test_helm import helm as helm  # the fixture
from voxmesh.metrics import ACTIVE_SESSIONS, SESSION_CAPACITY

STAGES = ("gateway", "vad", "voxtral", "orpheus")
MODEL_STAGES = {"vad": 50052, "voxtral": 50053, "orpheus": 50054}
KEDA = ["--set", "scaling.keda.enabled=true"]


@pytest.fixture(scope="module")
def docs(helm: Path) -> list[dict[str, Any]]:
    return render(helm)


@pytest.fixture(scope="module")
def keda_docs(helm: Path) -> list[dict[str, Any]]:
    return render(helm, *KEDA)


def builtin(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What kubernetes-validate knows (not KEDA's custom resources)."""
    return [d for d in docs if not d["apiVersion"].startswith("keda.sh/")]


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_scaling_objects_render_valid_kubernetes(helm: Path, version: str) -> None:
    from tests.deploy.test_helm import kubernetes_validate

    kubernetes_validate(builtin(render(helm, "--kube-version", version, *KEDA)), version)


def test_gateway_resolves_every_replica_through_a_headless_service(docs: list[dict[str, Any]]) -> None:
    services = by_kind(docs, "Service")
    env = env_of(by_kind(docs, "Deployment")["vm-voxmesh-gateway"])
    for stage, port in MODEL_STAGES.items():
        target = env[f"VOXMESH_GATEWAY_{stage.upper()}_ADDR"]
        assert target == f"dns:///vm-voxmesh-{stage}-replicas:{port}", target
        headless = services[f"vm-voxmesh-{stage}-replicas"]["spec"]
        assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is False
        assert headless["selector"] == services[f"vm-voxmesh-{stage}"]["spec"]["selector"]
        assert [(p["name"], p["port"]) for p in headless["ports"]] == [("grpc", port)]
    assert env["VOXMESH_GATEWAY_STAGE_RESOLVE_INTERVAL_S"] == "5"


def test_without_headless_stages_the_gateway_dials_the_cluster_ip_services(helm: Path) -> None:
    docs = render(helm, "--set", "scaling.headlessStages=false")
    env = env_of(by_kind(docs, "Deployment")["vm-voxmesh-gateway"])
    assert env["VOXMESH_GATEWAY_VOXTRAL_ADDR"] == "vm-voxmesh-voxtral:50053"
    assert not [name for name in by_kind(docs, "Service") if name.endswith("-replicas")]


def test_a_disruption_budget_per_stage(docs: list[dict[str, Any]]) -> None:
    budgets = by_kind(docs, "PodDisruptionBudget")
    deployments = by_kind(docs, "Deployment")
    assert sorted(budgets) == sorted(f"vm-voxmesh-{s}" for s in STAGES)
    for name, budget in budgets.items():
        assert budget["spec"]["maxUnavailable"] == 1
        pod_labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_pre_stop_and_a_grace_period_that_holds_the_drain(docs: list[dict[str, Any]]) -> None:
    for name, deployment in by_kind(docs, "Deployment").items():
        c = container(deployment)
        sleep = c["lifecycle"]["preStop"]["exec"]["command"]
        assert sleep[0] == "sleep", name
        drain_s = float(next(v for k, v in env_of(deployment).items() if k.endswith("_GRACE_S")))
        # Kubernetes counts preStop inside the grace period: both must fit, with room to spare.
        assert (
            deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > int(sleep[1]) + drain_s
        )


def test_keda_scales_each_stage_on_sessions_in_use_over_capacity(keda_docs: list[dict[str, Any]]) -> None:
    scaled = by_kind(keda_docs, "ScaledObject")
    deployments = by_kind(keda_docs, "Deployment")
    # The gateway and the stages (not the Realtime edge, whose load is the gateway's).
    assert sorted(scaled) == sorted(f"vm-voxmesh-{s}" for s in STAGES)
    assert not by_kind(keda_docs, "HorizontalPodAutoscaler")
    for name, obj in scaled.items():
        stage = name.removeprefix("vm-voxmesh-")
        assert obj["spec"]["scaleTargetRef"]["name"] in deployments
        trigger = obj["spec"]["triggers"][0]
        assert trigger["type"] == "prometheus" and trigger["metricType"] == "Value"
        query = trigger["metadata"]["query"]
        # The gauges the processes export, for this stage, in this namespace.
        for gauge in (ACTIVE_SESSIONS, SESSION_CAPACITY):
            assert f'{gauge._name}{{namespace="voice",service="{stage}"}}' in query, query
        assert 0 < float(trigger["metadata"]["threshold"]) < 1
        assert obj["spec"]["minReplicaCount"] <= obj["spec"]["maxReplicaCount"]


def test_keda_and_a_cpu_hpa_for_one_stage_is_refused(helm: Path) -> None:
    result = subprocess.run(
        [str(helm), "template", "vm", str(CHART), *KEDA, "--set", "voxtral.autoscaling.enabled=true"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "voxtral" in result.stderr and "enable one" in result.stderr


def test_lint_with_keda(helm: Path) -> None:
    run_helm(helm, "lint", str(CHART), *KEDA)


def test_keda_also_scales_voxtral_on_its_reply_queue_and_orpheus_on_its_real_time_factor(
    keda_docs: list[dict[str, Any]],
) -> None:
    scaled = by_kind(keda_docs, "ScaledObject")
    exported = exported_metric_names()
    engine_triggers = {name: obj["spec"]["triggers"][1:] for name, obj in scaled.items()}
    (queue,) = engine_triggers.pop("vm-voxmesh-voxtral")
    (rtf,) = engine_triggers.pop("vm-voxmesh-orpheus")
    assert not any(engine_triggers.values()), engine_triggers
    # A queue is per pod (the HPA divides the sum by the replicas); a factor is not.
    assert queue["metricType"] == "AverageValue" and float(queue["metadata"]["threshold"]) > 0
    assert rtf["metricType"] == "Value" and 0 < float(rtf["metadata"]["threshold"]) < 1
    for trigger, metric in (
        (queue, "voxmesh_reply_queue_depth"),
        (rtf, "voxmesh_synthesis_real_time_factor"),
    ):
        names = metric_names(trigger["metadata"]["query"])
        assert names and names <= exported, names - exported
        assert all(name.startswith(metric) for name in names), names
        assert 'namespace="voice"' in trigger["metadata"]["query"]
        assert trigger["metadata"]["ignoreNullValues"] == "false"


def test_an_engine_trigger_set_to_empty_is_left_out(helm: Path) -> None:
    docs = render(helm, *KEDA, "--set", "scaling.keda.orpheusRealTimeFactor=")
    assert len(by_kind(docs, "ScaledObject")["vm-voxmesh-orpheus"]["spec"]["triggers"]) == 1
