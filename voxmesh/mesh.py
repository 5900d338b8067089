"""The four services as child processes, started in order and stopped in reverse.

Shared by ``voxmesh up`` and ``voxmesh bench --spawn`` so both run the mesh
exactly as a user does: one ``voxmesh serve NAME`` process per service.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from voxmesh.processes import ServiceProcess, free_port

DEFAULT_PORTS = {"gateway": 50051, "vad": 50052, "voxtral": 50053, "orpheus": 50054}
DEFAULT_METRICS_PORTS = {"gateway": 9400, "vad": 9401, "voxtral": 9402, "orpheus": 9403}
STAGES = ("vad", "voxtral", "orpheus")


@dataclass
class Mesh:
    stages: list[ServiceProcess]
    gateway: ServiceProcess

    @property
    def services(self) -> list[ServiceProcess]:
        return [*self.stages, self.gateway]

    @classmethod
    def build(
        cls,
        engines: dict[str, str],
        ports: dict[str, int] | None = None,
        metrics_ports: dict[str, int] | None = None,
        host: str = "127.0.0.1",
        extra_args: dict[str, list[str]] | None = None,
    ) -> Mesh:
        """``engines``: service → ``--engine`` value; ``ports``: None picks free ports.

        Stages listen on loopback; only the gateway listens on ``host``.
        """
        ports = ports or {name: free_port() for name in DEFAULT_PORTS}
        extra_args = extra_args or {}

        def args(name: str) -> list[str]:
            out = ["--engine", engines[name]] if name in engines else []
            out += ["--metrics-port", str(metrics_ports[name]) if metrics_ports else "-1"]
            return out + extra_args.get(name, [])

        stages = [ServiceProcess(name, ports[name], args(name)) for name in STAGES]
        addresses = [f"--{s.name}-addr={s.address}" for s in stages]
        gateway = ServiceProcess(
            "gateway", ports["gateway"], ["--host", host, *addresses, *args("gateway")], host=host
        )
        return cls(stages, gateway)

    def start(self, timeout_s: float, progress: Callable[[str], None] = lambda _: None) -> None:
        """Start the stages together, then the gateway; raise if one fails to serve."""
        try:
            for svc in self.stages:
                svc.start()
            for svc in self.stages:
                progress(f"waiting for {svc.name} ({svc.address}) ...")
                svc.wait_serving(timeout_s)
            self.gateway.start().wait_serving(timeout_s)
        except BaseException:
            self.stop()
            raise

    def stop(self, progress: Callable[[str], None] = lambda _: None) -> None:
        """Gateway first (it drains its sessions), then the stages."""
        for svc in reversed(self.services):
            if svc.process is not None:
                progress(f"stopping {svc.name}: {svc.stop()}")
