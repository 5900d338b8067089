"""docker/Dockerfile and compose/: schema-valid, and wired as DESIGN.md documents.

There is no Docker engine here: the compose files are checked against the
Compose Specification schema (check-jsonschema's vendored copy, offline) and
their contents against the service settings; the Dockerfile by reading it.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import ROOT, UniqueKeyLoader, load_yaml
from voxmesh.card_profiles import PROFILES
from voxmesh.cli import settings_class

COMPOSE_DIR = ROOT / "compose"
COMPOSE = COMPOSE_DIR / "docker-compose.yml"
COMPOSE_CPU = COMPOSE_DIR / "docker-compose.cpu.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
#: Where compose's auth volume is mounted (the token files of voxmesh.auth_files).
AUTH_DIR = "/var/lib/voxmesh/auth"

STAGES = {"gateway": (50051, 9400), "vad": (50052, 9401), "voxtral": (50053, 9402), "orpheus": (50054, 9403)}
OBSERVABILITY = {"prometheus", "otel-collector", "jaeger", "grafana"}
#: The WebSocket edges (tests/deploy/test_edge_deploy.py and test_telephony_deploy.py check them).
EDGE = {"realtime", "telephony"}


class Reset:
    """Compose's ``!reset`` tag: the override removes the base value."""


class _OverrideLoader(UniqueKeyLoader):
    pass


_OverrideLoader.add_constructor("!reset", lambda loader, node: Reset())


def _merge(base: Any, override: Any) -> Any:
    """Compose's merge of an override file, for mappings (all these files use)."""
    if isinstance(override, Reset):
        return None
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            merged = _merge(base.get(key), value)
            if merged is None and isinstance(value, Reset):
                out.pop(key, None)
            else:
                out[key] = merged
        return out
    return override


def _strip_resets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_resets(v) for k, v in value.items() if not isinstance(v, Reset)}
    return value


def _interpolated(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's ``${VAR:-default}`` interpolation (nested defaults too) with ``env`` set."""
    env = env or {}
    pattern = re.compile(r"\$\{([A-Z0-9_]+):-([^${}]*)\}")
    text = str(value)
    while (m := pattern.search(text)) is not None:
        text = text[: m.start()] + (env.get(m.group(1)) or m.group(2)) + text[m.end() :]
    return text


def _interpolated_default(value: str) -> str:
    """``${VAR:-default}`` → default (what compose uses when VAR is unset)."""
    return _interpolated(value)


def _check_schema(path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{path}: {result.stdout}{result.stderr}"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE.read_text())
    return data


@pytest.fixture(scope="module")
def cpu_override() -> dict[str, Any]:
    data: dict[str, Any] = yaml.load(COMPOSE_CPU.read_text(), Loader=_OverrideLoader)
    return data


@pytest.fixture(scope="module")
def cpu_compose(compose: dict[str, Any], cpu_override: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = _merge(compose, cpu_override)
    return merged


def test_compose_file_matches_the_compose_spec() -> None:
    _check_schema(COMPOSE)


def test_cpu_override_and_merged_cpu_profile_match_the_compose_spec(
    cpu_override: dict[str, Any], cpu_compose: dict[str, Any], tmp_path: Path
) -> None:
    # check-jsonschema cannot parse the `!reset` tag: validate the override with
    # it resolved, and the configuration compose builds from both files.
    for name, data in (("override.json", _strip_resets(cpu_override)), ("merged.json", cpu_compose)):
        path = tmp_path / name
        path.write_text(json.dumps(data))
        _check_schema(path)


def test_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == set(STAGES) | OBSERVABILITY | EDGE | {"auth-init"}


def _published(service: dict[str, Any]) -> dict[int, int]:
    """Container port → host port."""
    out = {}
    for spec in service.get("ports", []):
        parts = _interpolated_default(spec).split(":")
        out[int(parts[-1])] = int(parts[-2])
    return out


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_ports_env_and_healthcheck(compose: dict[str, Any], stage: str) -> None:
    service = compose["services"][stage]
    grpc_port, metrics_port = STAGES[stage]
    assert _published(service) == {grpc_port: grpc_port, metrics_port: metrics_port}
    env = service["environment"]
    prefix = f"VOXMESH_{stage.upper()}_"
    assert env[f"{prefix}HOST"] == "0.0.0.0"
    assert int(env[f"{prefix}PORT"]) == grpc_port
    assert int(env[f"{prefix}METRICS_PORT"]) == metrics_port
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4317"
    assert service["command"][0] == stage
    assert service["healthcheck"]["test"][:4] == ["CMD", "voxmesh", "health", f"127.0.0.1:{grpc_port}"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_voxmesh_env_variable_is_a_real_setting(compose: dict[str, Any], stage: str) -> None:
    fields = settings_class(stage).model_fields
    prefix = f"VOXMESH_{stage.upper()}_"
    for key in compose["services"][stage]["environment"]:
        if key.startswith("VOXMESH_"):
            assert key.startswith(prefix), key
            assert key[len(prefix) :].lower() in fields, f"{key}: no such {stage} setting"


def test_gateway_reaches_the_stages_by_service_name(compose: dict[str, Any]) -> None:
    env = compose["services"]["gateway"]["environment"]
    for stage in ("vad", "voxtral", "orpheus"):
        assert env[f"VOXMESH_GATEWAY_{stage.upper()}_ADDR"] == f"{stage}:{STAGES[stage][0]}"
    assert set(compose["services"]["gateway"]["depends_on"]) == {"auth-init", "vad", "voxtral", "orpheus"}


def test_gpu_reservations_share_one_card(compose: dict[str, Any]) -> None:
    devices = {}
    total = 0.0
    for stage in ("voxtral", "orpheus"):
        service = compose["services"][stage]
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia"
        assert device["capabilities"] == ["gpu"]
        devices[stage] = device["device_ids"]
        env = service["environment"]
        assert _interpolated_default(env[f"VOXMESH_{stage.upper()}_ENGINE"]) == "vllm"
        assert service["volumes"] == ["models:/models", f"auth:{AUTH_DIR}:ro"]
        assert "HF_TOKEN" in env
        total += float(_interpolated_default(env[f"VOXMESH_{stage.upper()}_GPU_MEMORY_UTILIZATION"]))
    assert [_interpolated_default(d) for d in devices["voxtral"]] == ["0"]
    assert [_interpolated_default(d) for d in devices["orpheus"]] == ["0"]
    assert total <= 0.9, "two vLLM engines on one card need room for CUDA contexts and SNAC"
    # The realtime model (a third engine) is opt-in: the shared 24 GB card has no room for it.
    assert (
        _interpolated_default(compose["services"]["voxtral"]["environment"]["VOXMESH_VOXTRAL_REALTIME_MODEL"])
        == ""
    )
    for stage in ("vad", "gateway"):
        assert "deploy" not in compose["services"][stage]
    assert "models" in compose["volumes"]


def test_cpu_profile_runs_without_gpu(cpu_compose: dict[str, Any]) -> None:
    engines = {"voxtral": "echo", "orpheus": "espeak"}
    for stage, engine in engines.items():
        service = cpu_compose["services"][stage]
        assert service["environment"][f"VOXMESH_{stage.upper()}_ENGINE"] == engine
        assert service["build"]["target"] == "cpu"
        assert service["image"] == "voxmesh:cpu"
        assert not service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
    assert set(cpu_compose["services"]) == set(STAGES) | OBSERVABILITY | EDGE | {"auth-init"}
    # The 24 GB card's session limit is the GPU's, not the CPU engines'.
    for stage in ("voxtral", "orpheus", "gateway"):
        env = cpu_compose["services"][stage]["environment"]
        assert _interpolated_default(env[f"VOXMESH_{stage.upper()}_MAX_SESSIONS"]) == "32"


def test_no_secret_values_in_compose() -> None:
    text = COMPOSE.read_text() + COMPOSE_CPU.read_text()
    assert not re.search(r"hf_[A-Za-z0-9]{20,}", text), "a Hugging Face token is committed"
    assert re.search(r"HF_TOKEN: \$\{HF_TOKEN:-\}", text)


def test_prometheus_scrapes_every_service(compose: dict[str, Any]) -> None:
    config = load_yaml((COMPOSE_DIR / "prometheus.yml").read_text())
    targets = {
        (target, group.get("labels", {}).get("component"))
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    for stage, (_, metrics_port) in STAGES.items():
        assert (f"{stage}:{metrics_port}", stage) in targets
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts


def test_otel_collector_sends_traces_to_jaeger(compose: dict[str, Any]) -> None:
    config = load_yaml((COMPOSE_DIR / "otel-collector.yaml").read_text())
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "0.0.0.0:4317"
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    (exporter,) = pipeline["exporters"]
    assert config["exporters"][exporter]["endpoint"] == "jaeger:4317"
    for processor in pipeline["processors"]:
        assert processor in config["processors"]
    service = compose["services"]["otel-collector"]
    target = service["command"][0].removeprefix("--config=")
    assert f"./otel-collector.yaml:{target}:ro" in service["volumes"]


def test_grafana_provisioning(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"] if v.endswith(":ro"))
    for source in mounts:
        if source.startswith("."):  # a bind mount (the auth volume is named)
            assert (COMPOSE_DIR / source).exists(), source
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    dashboards_dir = mounts["../dashboards"]
    assert (COMPOSE_DIR / "../dashboards/voxmesh.json").is_file()

    provisioning = COMPOSE_DIR / "grafana" / "provisioning"
    datasources = [
        ds
        for f in sorted((provisioning / "datasources").glob("*.yml"))
        for ds in load_yaml(f.read_text())["datasources"]
    ]
    by_type = {ds["type"]: ds for ds in datasources}
    assert by_type["prometheus"]["url"] == "http://prometheus:9090"
    assert by_type["jaeger"]["url"] == "http://jaeger:16686"
    providers = [
        p
        for f in sorted((provisioning / "dashboards").glob("*.yml"))
        for p in load_yaml(f.read_text())["providers"]
    ]
    assert [p["options"]["path"] for p in providers] == [dashboards_dir]


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        if name in STAGES or name in EDGE or name == "auth-init":
            assert image in ("voxmesh:cpu", "voxmesh:gpu")
            assert service["build"]["dockerfile"] == "docker/Dockerfile"
            assert (COMPOSE_DIR / service["build"]["context"] / "docker/Dockerfile").is_file()
        else:
            tag = image.rpartition(":")[2]
            assert re.match(r"v?\d+\.\d+\.\d+$", tag), f"{name}: {image} is not pinned"


# --- docker/Dockerfile -------------------------------------------------------


def _stages(text: str) -> dict[str, str]:
    """Dockerfile build stage name → its instructions (line continuations joined)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    out: dict[str, str] = {}
    current = None
    for line in joined.splitlines():
        m = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if m:
            current = m.group(1)
            out[current] = ""
        elif current and line.strip() and not line.lstrip().startswith("#"):
            out[current] += line.strip() + "\n"
    return out


def _dockerignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").lstrip("/").removeprefix("**/")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path.split("/")[0], pattern):
            ignored = not negate
    return ignored


def test_dockerfile_targets() -> None:
    text = DOCKERFILE.read_text()
    stages = _stages(text)
    assert {"cpu", "gpu"} <= set(stages)
    args = dict(re.findall(r"^ARG (\w+_IMAGE)=(\S+)$", text, re.MULTILINE))
    assert args["PYTHON_IMAGE"].startswith("python:3.11.")
    # CUDA 13 like the torch 2.14 wheels (driver >= 580), the minimal base like vLLM's image.
    assert re.match(r"nvidia/cuda:13\.\d+\.\d+-base-ubuntu24\.04$", args["CUDA_IMAGE"])
    for image in args.values():
        assert re.search(r":v?\d+\.\d+(\.\d+)?", image) and not image.endswith(":latest"), image
    assert "['optional-dependencies']['cpu']" in stages["cpu"]
    assert "pip install -r requirements-gpu.lock" in stages["gpu"]
    extras = set(load_toml(ROOT / "pyproject.toml")["project"]["optional-dependencies"])
    assert {"cpu", "gpu"} <= extras
    for name in ("cpu", "gpu"):
        body = stages[name]
        assert re.search(r"^USER 10001", body, re.MULTILINE), name
        assert "HF_HOME=/models" in body
        assert 'VOLUME ["/models"]' in body
        assert 'ENTRYPOINT ["voxmesh", "serve"]' in body
        # What the container runs, where (voxmesh.container_health): not one fixed gRPC port.
        assert re.search(r"HEALTHCHECK .* CMD voxmesh health --container ", body)
        for stage in STAGES:
            assert f"VOXMESH_{stage.upper()}_HOST=0.0.0.0" in body
    # HF_TOKEN is a run-time secret: never an ARG or ENV baked into a layer.
    assert not re.search(r"^(ARG|ENV)\b.*HF_TOKEN", re.sub(r"\\\n", " ", text), re.MULTILINE)


def test_dockerfile_copies_what_dockerignore_keeps() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = set()
    for line in DOCKERFILE.read_text().splitlines():
        m = re.match(r"COPY (?!--from)(.+) \S+$", line)
        if m:
            sources |= set(m.group(1).split())
    assert {"pyproject.toml", "setup.py", "README.md", "protos", "voxmesh", "services", "gateway"} <= sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not _dockerignored(source, patterns), f"{source} is excluded by .dockerignore"
    for excluded in (".venv", ".git", ".tools", "tests", "voxmesh/v1"):
        assert _dockerignored(excluded, patterns), excluded


def load_toml(path: Path) -> dict[str, Any]:
    import tomllib

    with path.open("rb") as f:
        return tomllib.load(f)


# --- issue 14: GPU hosts -------------------------------------------------------


def _env_file(path: Path) -> dict[str, str]:
    pairs = (
        line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#")
    )
    return {k: v for k, v in pairs}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_gpu_env_files_are_the_card_profiles(name: str) -> None:
    # compose/gpu-*.env are what `python -m voxmesh.card_profiles --env NAME` prints.
    assert _env_file(COMPOSE_DIR / f"gpu-{name}.env") == PROFILES[name].env()


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_setting_reaches_a_service(compose: dict[str, Any], name: str) -> None:
    # Each variable of the env file is interpolated into the service whose setting it is.
    for key, value in PROFILES[name].env().items():
        stage = key.split("_")[1].lower()
        env = compose["services"][stage]["environment"]
        assert key in env, f"{key}: compose never passes it to {stage}"
        assert _interpolated(env[key], {key: value}) == value


def test_defaults_are_the_24gb_profile(compose: dict[str, Any]) -> None:
    for key, value in PROFILES["24gb"].env().items():
        stage = key.split("_")[1].lower()
        assert _interpolated_default(compose["services"][stage]["environment"][key]) == value, key


def test_both_vllm_stages_share_the_start_up_lock_on_the_models_volume(compose: dict[str, Any]) -> None:
    paths = set()
    for stage in ("voxtral", "orpheus"):
        service = compose["services"][stage]
        path = service["environment"][f"VOXMESH_{stage.upper()}_GPU_STARTUP_LOCK"]
        mounts = [v.split(":")[1] for v in service["volumes"]]
        assert any(path.startswith(m + "/") for m in mounts), f"{stage}: {path} is not on a shared volume"
        paths.add(path)
    assert len(paths) == 1


def test_up_d_does_not_wait_for_model_downloads(compose: dict[str, Any]) -> None:
    # `docker compose up -d` waits for every `service_healthy` dependency: with the GPU
    # stages' 1200 s start periods it blocked for minutes and aborted on a slow download.
    waits = {
        (name, dep)
        for name, service in compose["services"].items()
        if isinstance(service.get("depends_on"), dict)
        for dep, spec in service["depends_on"].items()
        if spec.get("condition") == "service_healthy"
    }
    assert not {pair for pair in waits if pair[1] in ("voxtral", "orpheus")}, waits
    assert compose["services"]["gateway"]["depends_on"]["voxtral"]["condition"] == "service_started"


def test_each_gpu_stage_can_take_its_own_card(compose: dict[str, Any]) -> None:
    def card(stage: str, env: dict[str, str]) -> str:
        (device,) = compose["services"][stage]["deploy"]["resources"]["reservations"]["devices"]
        (card_id,) = device["device_ids"]
        return _interpolated(card_id, env)

    assert card("voxtral", {"VOXMESH_GPU_DEVICE": "1"}) == card("orpheus", {"VOXMESH_GPU_DEVICE": "1"}) == "1"
    split = {"VOXMESH_VOXTRAL_GPU_DEVICE": "1", "VOXMESH_ORPHEUS_GPU_DEVICE": "0"}
    assert (card("voxtral", split), card("orpheus", split)) == ("1", "0")


def test_gpu_image_layers_base_and_caches() -> None:
    text = DOCKERFILE.read_text()
    stages = _stages(text)
    gpu = stages["gpu"]
    # Dependencies (from the lock) install before any source is copied.
    lines = gpu.splitlines()
    lock_install = next(i for i, line in enumerate(lines) if "pip install -r requirements-gpu.lock" in line)
    first_source = next(i for i, line in enumerate(lines) if line.startswith("COPY voxmesh"))
    assert lock_install < first_source
    assert "COPY docker/requirements-gpu.lock" in gpu
    assert "--mount=type=cache,target=/root/.cache/pip" in gpu
    assert "PIP_NO_CACHE_DIR" not in text, "it would defeat the cache mount"
    # Run-time compilation: gcc + Python.h for Triton, g++ for FlashInfer / inductor.
    for package in ("g++", "gcc", "python3.12-dev"):
        assert re.search(rf"apt-get install .*\s{re.escape(package)}(\s|$)", gpu), package
    # Compile caches on the model volume, so a restart does not recompile.
    for var in (
        "VLLM_CACHE_ROOT",
        "TRITON_CACHE_DIR",
        "TORCHINDUCTOR_CACHE_DIR",
        "FLASHINFER_WORKSPACE_BASE",
    ):
        assert re.search(rf"\b{var}=/models(/|\s)", gpu), var
    cpu = stages["cpu"].splitlines()
    deps = next(i for i, line in enumerate(cpu) if "pip install -r /tmp/requirements.txt" in line)
    assert deps < next(i for i, line in enumerate(cpu) if line.startswith("COPY voxmesh"))


def test_allinone_image_runs_the_whole_mesh_from_the_workspace_volume() -> None:
    body = _stages(DOCKERFILE.read_text())["allinone"]
    assert re.search(r"^FROM gpu AS allinone", DOCKERFILE.read_text(), re.MULTILINE)
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", body, re.MULTILINE).group(1))  # type: ignore[union-attr]
    assert entrypoint[:4] == ["python", "-m", "voxmesh.card_profiles", "--exec"]
    up = entrypoint[4:]
    assert up[:4] == ["voxmesh", "up", "--profile", "gpu"]
    assert up[up.index("--host") + 1] == "0.0.0.0"
    from voxmesh.mesh_cli import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    parser.parse_args(up[1:])  # the flags exist
    for var in (
        "HF_HOME",
        "VLLM_CACHE_ROOT",
        "TRITON_CACHE_DIR",
        "TORCHINDUCTOR_CACHE_DIR",
        "FLASHINFER_WORKSPACE_BASE",
    ):
        assert re.search(rf"\b{var}=/workspace/", body), var
    assert 'VOLUME ["/workspace"]' in body
    # Only the gateway faces the network; the stages have no auth.
    for stage in ("VAD", "VOXTRAL", "ORPHEUS"):
        assert f"VOXMESH_{stage}_HOST=127.0.0.1" in body
    assert re.search(r"^EXPOSE 50051 8080$", body, re.MULTILINE)
    # One container: the lock needs no shared volume, /tmp is common to every process.
    assert (
        "VOXMESH_VOXTRAL_GPU_STARTUP_LOCK=/tmp/" in body and "VOXMESH_ORPHEUS_GPU_STARTUP_LOCK=/tmp/" in body
    )


def test_every_hop_needs_a_token_from_the_auth_volume(compose: dict[str, Any]) -> None:
    """auth-init makes the token files before anything starts; the gateway and the edge accept
    only client tokens (their ports are public), the stages only the gateway's stage token;
    Grafana has no default admin password and no anonymous access.
    """
    services = compose["services"]
    init = services["auth-init"]
    assert init["entrypoint"] == ["python", "-m", "voxmesh.auth_files"]
    assert init["command"] == [AUTH_DIR] and f"auth:{AUTH_DIR}" in init["volumes"]
    for name in ("vad", "voxtral", "orpheus", "gateway", "realtime", "telephony"):
        service = services[name]
        assert f"auth:{AUTH_DIR}:ro" in service["volumes"], name
        env = service["environment"]
        assert not any(key.endswith("_AUTH_TOKEN") for key in env), (name, "a token in the environment")
        if name in ("vad", "voxtral", "orpheus"):
            assert env[f"VOXMESH_{name.upper()}_AUTH_TOKENS_FILE"] == f"{AUTH_DIR}/stage-token"
        if name not in EDGE:  # the edges wait for the gateway, which waits for auth-init
            condition = service["depends_on"]["auth-init"]["condition"]
            assert condition == "service_completed_successfully", name
    gateway = services["gateway"]["environment"]
    assert gateway["VOXMESH_GATEWAY_AUTH_TOKENS_FILE"] == f"{AUTH_DIR}/client-tokens"
    assert gateway["VOXMESH_GATEWAY_STAGE_AUTH_TOKEN_FILE"] == f"{AUTH_DIR}/stage-token"
    assert (
        services["realtime"]["environment"]["VOXMESH_REALTIME_AUTH_TOKENS_FILE"]
        == f"{AUTH_DIR}/client-tokens"
    )
    assert "auth" in compose["volumes"]
    # The images own the mount point, so the fresh volume is writable by uid 10001.
    assert DOCKERFILE.read_text().count("chown voxmesh:voxmesh /models /var/lib/voxmesh/auth") == 2
    # Grafana's admin password: made by auth-init (nothing to set before `up`), read from
    # the file by Grafana's uid through the group of the files' owner (the tokens are 0600).
    grafana = compose["services"]["grafana"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana["environment"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"] == f"{AUTH_DIR}/grafana-admin-password"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert f"auth:{AUTH_DIR}:ro" in grafana["volumes"] and grafana["group_add"] == ["10001"]
    assert grafana["depends_on"]["auth-init"]["condition"] == "service_completed_successfully"
    assert "--uid 10001 --user-group voxmesh" in DOCKERFILE.read_text()


def test_the_cpu_image_serves_the_edge_on_every_interface() -> None:
    """`docker run -p 8080:8080 voxmesh:cpu realtime` is reachable; no registry-fetched BuildKit frontend."""
    text = DOCKERFILE.read_text()
    assert not re.search(r"^#\s*syntax=", text, re.MULTILINE)
    cpu = _stages(text)["cpu"]
    assert re.search(r"\bVOXMESH_REALTIME_HOST=0\.0\.0\.0\b", cpu)
    exposed = {int(p) for line in re.findall(r"^EXPOSE (.*)$", cpu, re.MULTILINE) for p in line.split()}
    assert {8080, 9404} <= exposed
