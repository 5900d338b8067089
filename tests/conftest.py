"""Shared fixtures: real service processes on free ports, and espeak-ng speech."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest

from voxmesh.processes import ServiceProcess, free_port
from voxmesh.synthetic_speech import silence, speak

__all__ = ["silence", "speak"]


@pytest.fixture
def start_service() -> Iterator[Callable[..., ServiceProcess]]:
    """Start ``voxmesh serve NAME ARGS...`` on a free port; stopped after the test.

    Usage: ``svc = start_service("vad", "--engine", "silero")`` then talk gRPC to
    ``svc.address``. Metrics are off unless the args turn them on.
    """
    started: list[ServiceProcess] = []

    def start(
        name: str,
        *args: str,
        env: dict[str, str] | None = None,
        timeout_s: float = 120.0,
        serving: bool = True,
    ) -> ServiceProcess:
        """``serving=False``: started only (a gateway whose stage is down reports NOT_SERVING)."""
        extra = list(args)
        if "--metrics-port" not in extra:
            extra += ["--metrics-port", "-1"]
        svc = ServiceProcess(name, free_port(), extra, env or {})
        started.append(svc)
        svc.start()
        if serving:
            svc.wait_serving(timeout_s)
        return svc

    yield start
    for svc in reversed(started):
        svc.stop()


@pytest.fixture
def speech() -> Callable[..., np.ndarray]:
    """``speech("hello world", rate_hz=16000)`` → espeak-ng audio."""
    return speak
