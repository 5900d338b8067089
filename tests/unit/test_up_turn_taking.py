"""``voxmesh up`` ships the fast turn-taking, passes per-service flags through, and moves every port with --base-port."""

from __future__ import annotations

import pytest

from voxmesh.cli import build_parser
from voxmesh.mesh import Mesh
from voxmesh.mesh_cli import build_mesh, pick_profile
from voxmesh.processes import ServiceProcess
from voxmesh.turn_taking_defaults import find_smart_turn_model


def up(*argv: str) -> Mesh:
    args = build_parser().parse_args(["up", *argv])
    return build_mesh(args, pick_profile("cpu"))


def _service(mesh: Mesh, name: str) -> ServiceProcess:
    return next(svc for svc in mesh.services if svc.name == name)


def _flag(svc: ServiceProcess, flag: str) -> str | None:
    """The value of ``flag`` as the service will read it (the last one given wins)."""
    values = [svc.args[i + 1] for i, arg in enumerate(svc.args) if arg == flag]
    return values[-1] if values else None


def test_the_default_mesh_runs_smart_turn_speculation_and_the_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOXMESH_END_OF_TURN", raising=False)
    mesh = up()
    vad, gateway = _service(mesh, "vad"), _service(mesh, "gateway")
    assert _flag(vad, "--end-of-turn") == "smart-turn"
    assert _flag(vad, "--turn-complete-hangover-ms") == "150"
    assert _flag(vad, "--turn-complete-threshold") == "0.9"
    assert _flag(vad, "--turn-incomplete-hangover-ms") == "700"
    assert _flag(gateway, "--speculate-after-ms") == "100"
    assert _flag(gateway, "--hold-unfinished-ms") == "1000"
    # `make smart-turn-model` put the file where up looks (the tests' own prerequisite).
    assert find_smart_turn_model() is not None
    assert _flag(vad, "--smart-turn-model") == find_smart_turn_model()


def test_silence_only_endpointing_is_one_setting_away(monkeypatch: pytest.MonkeyPatch) -> None:
    vad = _service(up("--end-of-turn", "silence"), "vad")
    assert _flag(vad, "--end-of-turn") == "silence"
    assert _flag(vad, "--smart-turn-model") is None
    monkeypatch.setenv("VOXMESH_END_OF_TURN", "silence")
    assert _flag(_service(up(), "vad"), "--end-of-turn") == "silence"


def test_an_operators_environment_variable_is_not_overridden_by_the_shipped_flags(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VOXMESH_VAD_TURN_COMPLETE_HANGOVER_MS", "250")
    vad = _service(up(), "vad")
    assert _flag(vad, "--turn-complete-hangover-ms") is None
    assert _flag(vad, "--end-of-turn") == "smart-turn"


def test_per_service_flags_pass_through_and_win() -> None:
    mesh = up(
        "--vad-args", "--turn-complete-hangover-ms 200 --hangover-ms 600",
        "--gateway-args=--speculate-after-ms 0",
        "--orpheus-args", "--log-level debug",
    )  # fmt: skip
    vad, gateway, orpheus = _service(mesh, "vad"), _service(mesh, "gateway"), _service(mesh, "orpheus")
    assert _flag(vad, "--turn-complete-hangover-ms") == "200"
    assert _flag(vad, "--hangover-ms") == "600"
    assert _flag(gateway, "--speculate-after-ms") == "0"
    assert _flag(orpheus, "--log-level") == "debug"


def test_base_port_moves_the_metrics_ports_too_so_two_meshes_run_side_by_side() -> None:
    first, second = up("--base-port", "7000"), up("--base-port", "7100")
    ports = [
        {svc.port for svc in mesh.services}
        | {int(_flag(svc, "--metrics-port") or 0) for svc in mesh.services}
        for mesh in (first, second)
    ]
    assert not ports[0] & ports[1]
    assert _flag(_service(first, "gateway"), "--metrics-port") == "7010"
    assert _flag(_service(first, "vad"), "--metrics-port") == "7011"
    assert _flag(_service(first, "realtime"), "--metrics-port") == "7014"
    # Without --base-port the metrics stay where DESIGN.md puts them.
    assert _flag(_service(up(), "vad"), "--metrics-port") == "9401"


def test_compose_ships_the_same_turn_taking() -> None:
    import re
    from pathlib import Path

    import yaml

    from voxmesh.turn_taking_defaults import FAST

    compose = yaml.safe_load(Path("compose/docker-compose.yml").read_text())
    for service in ("vad", "gateway"):
        env = compose["services"][service]["environment"]
        for field, value in FAST[service]:
            # ${VAR:-default} keeps an operator's override; the default is what ships.
            setting = str(env[f"VOXMESH_{service.upper()}_{field.upper()}"])
            assert re.sub(r"^\$\{[A-Z_]+:-(.*)\}$", r"\1", setting) == value, (service, field, setting)
