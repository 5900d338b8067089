"""helm/voxmesh: documented values that must reach the running processes, and the
policies that must admit what the chart itself runs.

Each test renders the chart with the real helm binary. Where a value only
matters once a process reads it (the Realtime edge's client tokens), the
rendered container environment is handed to a real ``voxmesh serve realtime``
the way the kubelet would: Secret keys resolved from the rendered Secret,
mounted Secret files written to a temporary folder.
"""

from __future__ import annotations

import asyncio
import base64
import re
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.deploy import ROOT, load_yaml
from tests.deploy.test_helm import (
    CHART,
    KUBE_VERSIONS,
    by_kind,
    container,
    env_of,
    helm,  # noqa: F401 - the fixture
    kubernetes_validate,
    render,
)
from voxmesh.cli import settings_class
from voxmesh.processes import ServiceProcess, free_port
from voxmesh.realtime.readiness import wait_edge_serving
from voxmesh.realtime.settings import RealtimeSettings

EDGE = "vm-voxmesh-realtime"
TOKENS = [
    "--set",
    "secrets.authToken=shared-token",
    "--set",
    "secrets.clientTokensSecret=voxmesh-client-tokens",
]


def deployment(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return by_kind(docs, "Deployment")[f"vm-voxmesh-{name}"]


# --- 1. per-app client tokens reach the Realtime edge -----------------------------


def kubelet_env(docs: list[dict[str, Any]], name: str, files: dict[str, str], root: Path) -> dict[str, str]:
    """The container's environment as the kubelet builds it, with ``files`` (path in the
    pod -> content) written under ``root`` and paths in values rewritten to point there.
    """
    secrets = {s["metadata"]["name"]: s["data"] for s in by_kind(docs, "Secret").values()}
    env: dict[str, str] = {}
    for entry in container(deployment(docs, name))["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
            continue
        ref = entry["valueFrom"]["secretKeyRef"]
        data = secrets.get(ref["name"], {})
        if ref["key"] in data:
            env[entry["name"]] = base64.b64decode(data[ref["key"]]).decode()
        else:
            assert ref.get("optional"), f"{name}: {entry['name']} needs {ref} and the pod would not start"
    for pod_path, content in files.items():
        local = root / pod_path.lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(content)
    for key, value in env.items():
        if value in files:
            env[key] = str(root / value.lstrip("/"))
    return env


def mounted_secret_files(docs: list[dict[str, Any]], name: str, secret: str, content: str) -> dict[str, str]:
    """Pod paths at which ``secret``'s items appear in the container, each holding ``content``."""
    spec = deployment(docs, name)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    files = {}
    for mount in container(deployment(docs, name))["volumeMounts"]:
        source = volumes[mount["name"]].get("secret")
        if source and source["secretName"] == secret:
            for item in source["items"]:
                files[f"{mount['mountPath']}/{item['path']}"] = content
    return files


async def handshake_status(port: int, token: str) -> int:
    """101 when the edge upgrades the WebSocket, else the HTTP status it refused with."""
    try:
        async with connect(
            f"ws://127.0.0.1:{port}/v1/realtime",
            additional_headers={"Authorization": f"Bearer {token}"},
            open_timeout=10,
        ):
            return 101
    except InvalidStatus as exc:
        return int(exc.response.status_code)


def test_a_per_app_client_token_opens_the_realtime_edge(helm: Path, tmp_path: Path) -> None:  # noqa: F811
    # The gateway accepted a line of secrets.clientTokensSecret over gRPC while the
    # edge, which checks the token before forwarding it, knew only secrets.authToken: 401.
    docs = render(helm, *TOKENS)
    files = mounted_secret_files(docs, "realtime", "voxmesh-client-tokens", "# one per app\napp-token\n")
    assert files, "the edge does not mount secrets.clientTokensSecret"
    assert files == mounted_secret_files(
        docs, "gateway", "voxmesh-client-tokens", "# one per app\napp-token\n"
    )
    env = kubelet_env(docs, "realtime", files, tmp_path)
    port = free_port()
    # Its own port on loopback and no metrics listener; everything else as rendered.
    edge = ServiceProcess(
        "realtime",
        port,
        ["--host", "127.0.0.1", "--metrics-port", "-1", f"--gateway=127.0.0.1:{free_port()}"],
        env,
    )
    try:
        wait_edge_serving(edge.start())
        assert asyncio.run(handshake_status(port, "app-token")) == 101, edge.log_tail()
        assert asyncio.run(handshake_status(port, "shared-token")) == 101, edge.log_tail()
        assert asyncio.run(handshake_status(port, "someone-else")) == 401, edge.log_tail()
    finally:
        edge.stop()


# --- 2. `helm test` gets through a restricted gateway policy ----------------------


def admits(rule: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether an ingress rule lets a pod of this release's namespace with ``labels`` in."""
    peers = rule.get("from")
    if not peers:
        return True
    for peer in peers:
        if set(peer) == {"podSelector"}:  # same namespace only
            selector = peer["podSelector"]
            assert set(selector) <= {"matchLabels"}, selector
            if selector.get("matchLabels", {}).items() <= labels.items():
                return True
    return False


@pytest.mark.parametrize("realtime", ["true", "false"])
def test_the_helm_test_pod_is_admitted_by_a_restricted_gateway(helm: Path, realtime: str) -> None:  # noqa: F811
    docs = render(
        helm,
        "--set", "networkPolicy.gatewayFrom[0].namespaceSelector.matchLabels.team=voice-apps",
        "--set", f"realtime.enabled={realtime}",
    )  # fmt: skip
    (pod,) = [
        d for d in docs if d["kind"] == "Pod" and d["metadata"]["annotations"]["helm.sh/hook"] == "test"
    ]
    policy = by_kind(docs, "NetworkPolicy")["vm-voxmesh-gateway"]["spec"]
    (grpc_rule,) = [r for r in policy["ingress"] if r["ports"][0]["port"] == 50051]
    assert admits(grpc_rule, pod["metadata"]["labels"]), grpc_rule
    # Still restricted: a pod of the release that is neither the edge nor the test pod stays out.
    vad_labels = deployment(docs, "vad")["spec"]["template"]["metadata"]["labels"]
    assert not admits(grpc_rule, vad_labels)


# --- 3. vad.maxSessions -----------------------------------------------------------


def test_vad_max_sessions_reaches_the_vad_process(helm: Path) -> None:  # noqa: F811
    values = load_yaml((CHART / "values.yaml").read_text())
    assert "maxSessions" in values["vad"], "documented as <stage>.maxSessions in docs/deploy.md"
    assert "max_sessions" in settings_class("vad").model_fields
    env = env_of(deployment(render(helm, "--set", "vad.maxSessions=128"), "vad"))
    assert env["VOXMESH_VAD_MAX_SESSIONS"] == "128"
    # Unset: the service's own default, as for the other stages.
    assert "VOXMESH_VAD_MAX_SESSIONS" not in env_of(deployment(render(helm), "vad"))


# --- 4. the edge admits no more WebSockets than the gateway has sessions ----------


def edge_and_gateway_limits(docs: list[dict[str, Any]]) -> tuple[int, int]:
    """The session limits the two processes run with (the setting's default where unset)."""
    limits = []
    for name, settings in (("realtime", RealtimeSettings), ("gateway", settings_class("gateway"))):
        value = env_of(deployment(docs, name)).get(f"VOXMESH_{name.upper()}_MAX_SESSIONS")
        limits.append(int(value) if value is not None else settings.model_fields["max_sessions"].default)
    return limits[0], limits[1]


@pytest.mark.parametrize(
    "values, limit",
    [
        ([], None),
        (["--set", "gpu.enabled=true"], 6),  # the 24gb profile
        (["--set", "gpu.enabled=true", "--set", "gpu.memoryProfile=80gb"], 32),
        (["--set", "gateway.maxSessions=12"], 12),
        (["--set", "gpu.enabled=true", "--set", "gateway.maxSessions=4"], 4),
    ],
    ids=["cpu", "gpu-24gb", "gpu-80gb", "cpu-set", "gpu-set"],
)
def test_the_edge_session_limit_defaults_to_the_gateways(
    helm: Path,  # noqa: F811
    values: list[str],
    limit: int | None,
) -> None:
    edge, gateway = edge_and_gateway_limits(render(helm, *values))
    assert edge == gateway, f"the edge admits {edge} WebSockets in front of a {gateway}-session gateway"
    if limit is not None:
        assert gateway == limit


def test_a_set_edge_session_limit_wins(helm: Path) -> None:  # noqa: F811
    docs = render(helm, "--set", "gpu.enabled=true", "--set", "realtime.maxSessions=3")
    assert edge_and_gateway_limits(docs) == (3, 6)


# --- 5. a writable /models whatever the cache -------------------------------------


def image_paths_under_models() -> dict[str, str]:
    """Environment variables the images point under /models (HF, vLLM, Triton, ... caches)."""
    text = (ROOT / "docker" / "Dockerfile").read_text()
    found = dict(re.findall(r"\b([A-Z][A-Z0-9_]*)=(/models(?:/[^\s\\\"]*)?)", text))
    assert "HF_HOME" in found and "VLLM_CACHE_ROOT" in found, found
    return found


@pytest.mark.parametrize("cache", ["pvc", "hostPath", "emptyDir", "none"])
def test_model_stages_can_write_their_caches_under_a_read_only_root(helm: Path, cache: str) -> None:  # noqa: F811
    docs = render(helm, "--set", "gpu.enabled=true", "--set", f"modelCache.type={cache}")
    for stage in ("voxtral", "orpheus"):
        c = container(deployment(docs, stage))
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        writable = [m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")]
        env = {
            **image_paths_under_models(),
            **{k: v for k, v in env_of(deployment(docs, stage)).items() if isinstance(v, str)},
        }
        for name, path in env.items():
            if path == "/models" or path.startswith("/models/"):
                under = [m for m in writable if path == m or path.startswith(m + "/")]
                assert under, f"{stage} ({cache}): {name}={path} is on the read-only root filesystem"


def test_no_model_cache_is_a_per_pod_scratch_volume(helm: Path) -> None:  # noqa: F811
    docs = render(helm, "--set", "modelCache.type=none")
    assert not by_kind(docs, "PersistentVolumeClaim")
    for stage in ("voxtral", "orpheus"):
        volumes = {v["name"]: v for v in deployment(docs, stage)["spec"]["template"]["spec"]["volumes"]}
        assert volumes["models"] == {"name": "models", "emptyDir": {}}
        mounts = container(deployment(docs, stage))["volumeMounts"]
        assert {"name": "models", "mountPath": "/models"} in mounts
    for stage in ("vad", "gateway"):
        assert "/models" not in str(container(deployment(docs, stage)).get("volumeMounts"))


# --- 6. the schema check itself is strict -----------------------------------------


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_the_schema_check_refuses_a_field_kubernetes_does_not_know(helm: Path, version: str) -> None:  # noqa: F811
    # Every render above passes kubernetes_validate; this shows a passing check means something.
    docs = render(helm, "--kube-version", version, "--set", "realtime.enabled=false")
    broken = deployment(docs, "vad")
    container(broken)["volumeMount"] = container(broken).pop("volumeMounts")  # a typo --strict must catch
    with pytest.raises(AssertionError, match="volumeMount"):
        kubernetes_validate(docs, version)
