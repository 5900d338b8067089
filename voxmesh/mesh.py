"""The four services (and the Realtime edge) as child processes, started in order and stopped in reverse.

Shared by ``voxmesh up`` and ``voxmesh bench --spawn`` so both run the mesh
exactly as a user does: one ``voxmesh serve NAME`` process per service. The
WebSocket edge (``voxmesh serve realtime``) is a client of the gateway, so it
starts last and stops first; ``voxmesh up`` runs it, the benchmarks do not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from voxmesh.processes import ServiceProcess, free_port
from voxmesh.realtime.readiness import wait_edge_serving

DEFAULT_PORTS = {"gateway": 50051, "vad": 50052, "voxtral": 50053, "orpheus": 50054}
STAGES = ("vad", "voxtral", "orpheus")
#: The Realtime edge (``voxmesh serve realtime``) and its WebSocket/HTTP port (DESIGN.md).
EDGE = "realtime"
EDGE_PORT = 8080
#: The phone edge (``voxmesh serve telephony``), run by ``voxmesh up --telephony``.
PHONE = "telephony"
PHONE_PORT = 8081
DEFAULT_METRICS_PORTS = {
    "gateway": 9400,
    "vad": 9401,
    "voxtral": 9402,
    "orpheus": 9403,
    EDGE: 9404,
    PHONE: 9405,
}


@dataclass
class Mesh:
    stages: list[ServiceProcess]
    gateway: ServiceProcess
    #: ``voxmesh serve realtime`` in front of the gateway; None when not run.
    edge: ServiceProcess | None = None
    #: ``voxmesh serve telephony`` in front of the gateway; None when not run.
    phone: ServiceProcess | None = None

    @property
    def services(self) -> list[ServiceProcess]:
        """Every process in start order (the edges last)."""
        edges = [svc for svc in (self.edge, self.phone) if svc is not None]
        return [*self.stages, self.gateway, *edges]

    @classmethod
    def build(
        cls,
        engines: dict[str, str],
        ports: dict[str, int] | None = None,
        metrics_ports: dict[str, int] | None = None,
        host: str = "127.0.0.1",
        extra_args: dict[str, list[str]] | None = None,
        edge_port: int | None = None,
        phone_port: int | None = None,
    ) -> Mesh:
        """``engines``: service → ``--engine`` value; ``ports``: None picks free ports.

        Stages listen on loopback; only the gateway (and the edge) listen on ``host``.
        ``edge_port``: run the Realtime edge there (its metrics port is ``metrics_ports["realtime"]``).
        ``phone_port``: run the phone edge there (its metrics port is ``metrics_ports["telephony"]``).
        """
        ports = ports or {name: free_port() for name in DEFAULT_PORTS}
        extra_args = extra_args or {}

        def args(name: str) -> list[str]:
            out = ["--engine", engines[name]] if name in engines else []
            out += ["--metrics-port", str(metrics_ports.get(name, -1)) if metrics_ports else "-1"]
            return out + extra_args.get(name, [])

        stages = [ServiceProcess(name, ports[name], args(name)) for name in STAGES]
        addresses = [f"--{s.name}-addr={s.address}" for s in stages]
        gateway = ServiceProcess(
            "gateway", ports["gateway"], ["--host", host, *addresses, *args("gateway")], host=host
        )
        # A wildcard address is not one to dial: the edges reach the gateway on loopback.
        dial = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        edges = {
            name: ServiceProcess(
                name, port, ["--host", host, f"--gateway={dial}:{gateway.port}", *args(name)], host=host
            )
            for name, port in ((EDGE, edge_port), (PHONE, phone_port))
            if port is not None
        }
        return cls(stages, gateway, edges.get(EDGE), edges.get(PHONE))

    def start(self, timeout_s: float, progress: Callable[[str], None] = lambda _: None) -> None:
        """Start the stages together, then the gateway; raise if one fails to serve."""
        try:
            for svc in self.stages:
                svc.start()
            for svc in self.stages:
                progress(f"waiting for {svc.name} ({svc.address}) ...")
                svc.wait_serving(timeout_s)
            self.gateway.start().wait_serving(timeout_s)
            for edge in (self.edge, self.phone):
                if edge is not None:
                    # The edges answer HTTP /healthz, not gRPC health.
                    wait_edge_serving(edge.start(), timeout_s)
        except BaseException:
            self.stop()
            raise

    def stop(self, progress: Callable[[str], None] = lambda _: None) -> None:
        """The edge and the gateway first (they drain their sessions), then the stages."""
        for svc in reversed(self.services):
            if svc.process is not None:
                progress(f"stopping {svc.name}: {svc.stop()}")
