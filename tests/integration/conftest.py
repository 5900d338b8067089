"""The CPU mesh as real processes: vad (webrtcvad), voxtral (echo), orpheus (espeak), gateway."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from voxmesh.processes import ServiceProcess, free_port


@dataclass
class Mesh:
    vad: ServiceProcess
    voxtral: ServiceProcess
    orpheus: ServiceProcess
    gateway: ServiceProcess

    @property
    def address(self) -> str:
        return self.gateway.address


@pytest.fixture
def start_mesh(start_service: Callable[..., ServiceProcess]) -> Iterator[Callable[..., Mesh]]:
    """``start_mesh(gateway_args=[...], skip=("orpheus",))``: stages first, then the gateway.

    A skipped stage gets a reserved port with nothing listening, so the
    gateway sees it as down (tests start it later with ``start_stage``); the
    gateway is then only started, not waited for: it reports NOT_SERVING.
    """

    def start(
        gateway_args: tuple[str, ...] = (),
        skip: tuple[str, ...] = (),
        voxtral_args: tuple[str, ...] = ("--engine", "echo"),
        orpheus_args: tuple[str, ...] = ("--engine", "espeak"),
        vad_args: tuple[str, ...] = (),
    ) -> Mesh:
        stage_args = {"vad": vad_args, "voxtral": voxtral_args, "orpheus": orpheus_args}
        stages: dict[str, ServiceProcess] = {}
        for name, args in stage_args.items():
            if name in skip:
                # Metrics off, as start_service does: the default port may be taken.
                stages[name] = ServiceProcess(name, free_port(), [*args, "--metrics-port", "-1"])
            else:
                stages[name] = start_service(name, *args)
        gateway = start_service(
            "gateway",
            "--vad-addr", stages["vad"].address,
            "--voxtral-addr", stages["voxtral"].address,
            "--orpheus-addr", stages["orpheus"].address,
            *gateway_args,
            serving=not skip,
        )  # fmt: skip
        return Mesh(stages["vad"], stages["voxtral"], stages["orpheus"], gateway)

    yield start


@pytest.fixture
def mesh(start_mesh: Callable[..., Mesh]) -> Mesh:
    return start_mesh()
