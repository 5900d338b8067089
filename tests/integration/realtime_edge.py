"""The CPU mesh plus ``voxmesh serve realtime`` as real processes, once per test module."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from voxmesh.processes import ServiceProcess, free_port
from voxmesh.realtime.readiness import wait_edge_serving


@dataclass
class EdgeMesh:
    gateway: ServiceProcess
    edge: ServiceProcess

    @property
    def ws_base(self) -> str:
        """What the openai SDK takes as websocket_base_url."""
        return f"ws://{self.edge.address}/v1"

    @property
    def url(self) -> str:
        return f"ws://{self.edge.address}/v1/realtime"


@contextmanager
def edge_mesh(
    gateway_args: tuple[str, ...] = (), edge_args: tuple[str, ...] = (), vad_args: tuple[str, ...] = ()
) -> Iterator[EdgeMesh]:
    """The CPU mesh (webrtcvad, echo, espeak), a gateway, and the edge in front of it."""
    started: list[ServiceProcess] = []
    try:
        stages = {}
        for name, args in (
            ("vad", [*vad_args]),
            ("voxtral", ["--engine", "echo"]),
            ("orpheus", ["--engine", "espeak"]),
        ):
            stages[name] = ServiceProcess(name, free_port(), [*args, "--metrics-port", "-1"]).start()
            started.append(stages[name])
        for svc in stages.values():
            svc.wait_serving(120)
        addresses = [f"--{name}-addr={svc.address}" for name, svc in stages.items()]
        gateway = ServiceProcess("gateway", free_port(), [*addresses, "--metrics-port", "-1", *gateway_args])
        started.append(gateway)
        gateway.start().wait_serving(120)
        edge = ServiceProcess(
            "realtime", free_port(), ["--gateway", gateway.address, "--metrics-port", "-1", *edge_args]
        )
        started.append(edge)
        edge.start()
        wait_edge_serving(edge)
        yield EdgeMesh(gateway, edge)
    finally:
        for svc in reversed(started):
            svc.stop()
