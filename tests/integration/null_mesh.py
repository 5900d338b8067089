"""A gateway over null-engine stages, each its own process, for tests of the gateway's own limits."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from voxmesh.processes import ServiceProcess, free_port


def start_null_mesh(
    *gateway_args: str, serving: bool = True, stage_metrics: dict[str, int] | None = None
) -> list[ServiceProcess]:
    """vad, voxtral (null), orpheus (null) and a gateway given `gateway_args`; the gateway is last.

    With `serving=False` the gateway is started but not waited for (a test of its start-up).
    `stage_metrics` gives stages a /metrics port by name (else none).
    The caller stops the processes; on a failed start they are stopped here.
    """
    ports = stage_metrics or {}
    processes = [
        ServiceProcess(name, free_port(), [*args, f"--metrics-port={ports.get(name, -1)}"])
        for name, args in (("vad", []), ("voxtral", ["--engine=null"]), ("orpheus", ["--engine=null"]))
    ]
    try:
        for svc in processes:
            svc.start()
        for svc in processes:
            svc.wait_serving(120)
        addresses = [f"--{svc.name}-addr={svc.address}" for svc in processes]
        gateway = ServiceProcess("gateway", free_port(), [*addresses, "--metrics-port=-1", *gateway_args])
        processes.append(gateway)
        gateway.start()
        if serving:
            gateway.wait_serving(120)
    except BaseException:
        stop_all(processes)
        raise
    return processes


def stop_all(processes: list[ServiceProcess]) -> None:
    """Stop ``processes`` in reverse order of start (the gateway first)."""
    for svc in reversed(processes):
        svc.stop()


@contextlib.contextmanager
def null_mesh(*gateway_args: str, stage_metrics: dict[str, int] | None = None) -> Iterator[ServiceProcess]:
    """:func:`start_null_mesh`, serving, for a ``with`` block: its gateway, and everything stopped after."""
    processes = start_null_mesh(*gateway_args, stage_metrics=stage_metrics)
    try:
        yield processes[-1]
    finally:
        stop_all(processes)
