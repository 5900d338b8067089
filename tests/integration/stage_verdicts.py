"""What a gateway logged about its stages (voxmesh.gateway.stage_check), read from its log file."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from voxmesh.processes import ServiceProcess

STAGE_NAMES = ("vad", "voxtral", "orpheus")


def log_entries(svc: ServiceProcess) -> list[dict[str, object]]:
    entries = []
    for line in Path(svc.log_path).read_text(errors="replace").splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue  # grpc core's own lines
    return entries


def stage_warnings(gateway: ServiceProcess) -> list[dict[str, object]]:
    """The gateway's "cannot use stage" lines."""
    return [
        e for e in log_entries(gateway) if e.get("logger") == "voxmesh.gateway.stage_check" and e.get("cause")
    ]


def wait_until(condition: Callable[[], bool], svc: ServiceProcess, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if reason := svc.exit_reason():
            raise AssertionError(f"{svc.name} {reason}:\n{svc.log_tail()}")
        assert time.monotonic() < deadline, f"{what}:\n{svc.log_tail(40)}"
        time.sleep(0.1)


def wait_for_verdict(gateway: ServiceProcess, stages: Iterable[str] = STAGE_NAMES) -> list[dict[str, object]]:
    """Until the gateway logged a cause for each of ``stages``; its "cannot use stage" lines."""
    wanted = set(stages)
    wait_until(
        lambda: {e["stage"] for e in stage_warnings(gateway)} >= wanted,
        gateway,
        f"no cause logged for {sorted(wanted)}",
    )
    return stage_warnings(gateway)
