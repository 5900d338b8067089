"""``voxmesh up`` runs the Realtime edge as its fifth process: which ports, which gateway it dials, and the flag that leaves it out."""

from __future__ import annotations

from voxmesh.cli import build_parser
from voxmesh.mesh import Mesh
from voxmesh.mesh_cli import build_mesh, pick_profile


def up(*argv: str) -> Mesh:
    args = build_parser().parse_args(["up", *argv])
    return build_mesh(args, pick_profile("cpu"))


def test_the_edge_is_the_last_process_on_8080_with_metrics_on_9404() -> None:
    mesh = up()
    assert mesh.edge is not None
    assert [svc.name for svc in mesh.services] == ["vad", "voxtral", "orpheus", "gateway", "realtime"]
    assert mesh.edge.port == 8080
    assert "--gateway=127.0.0.1:50051" in mesh.edge.args
    assert mesh.edge.args[mesh.edge.args.index("--metrics-port") + 1] == "9404"


def test_on_all_interfaces_the_edge_listens_there_and_dials_the_gateway_on_loopback() -> None:
    mesh = up("--host", "0.0.0.0", "--gateway-port", "6000", "--realtime-port", "9000")
    assert mesh.edge is not None and mesh.edge.address == "0.0.0.0:9000"
    assert mesh.edge.args[mesh.edge.args.index("--host") + 1] == "0.0.0.0"
    assert "--gateway=127.0.0.1:6000" in mesh.edge.args


def test_base_port_gives_the_edge_the_fifth_port_and_no_metrics_turns_its_off() -> None:
    mesh = up("--base-port", "7000", "--no-metrics")
    assert [svc.port for svc in mesh.services] == [7001, 7002, 7003, 7000, 7004]
    assert mesh.edge is not None
    assert mesh.edge.args[mesh.edge.args.index("--metrics-port") + 1] == "-1"


def test_no_realtime_runs_the_four_grpc_services_only() -> None:
    mesh = up("--no-realtime")
    assert mesh.edge is None
    assert [svc.name for svc in mesh.services] == ["vad", "voxtral", "orpheus", "gateway"]


def test_telephony_adds_the_phone_edge_last_on_8081_with_metrics_on_9405() -> None:
    assert up().phone is None  # off unless asked for
    mesh = up("--telephony")
    assert mesh.phone is not None
    assert [svc.name for svc in mesh.services][-2:] == ["realtime", "telephony"]
    assert mesh.phone.port == 8081
    assert "--gateway=127.0.0.1:50051" in mesh.phone.args
    assert mesh.phone.args[mesh.phone.args.index("--metrics-port") + 1] == "9405"
    moved = up("--telephony", "9100", "--base-port", "7000")
    assert moved.phone is not None and moved.phone.port == 7005
    assert up("--telephony", "9100").phone.port == 9100  # type: ignore[union-attr]
