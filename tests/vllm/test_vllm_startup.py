"""While vLLM loads, a service answers health checks (NOT_SERVING) and stops on SIGTERM.

``AsyncLLM.from_engine_args`` polls vLLM's engine core synchronously until
the model is loaded; called on the service's event loop it froze the loop
for the whole load (minutes for real weights): health checks timed out and
SIGTERM waited for the load. The engines now build it on a thread
(:mod:`voxmesh.engine_loading`).

"While it loads" is made certain, not timed: the test stops vLLM's engine
core process (SIGSTOP) as soon as it exists, so the load cannot finish until
the test lets it go. Before the fix, the health check below timed out and
the service never reached "stopping during start-up".
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("vllm")

from voxmesh.processes import ServiceProcess, check_health, free_port
from voxmesh.services.orpheus.random_checkpoint import save_orpheus, save_snac
from voxmesh.services.voxtral.random_checkpoint import save_voxtral_mistral

psutil = pytest.importorskip("psutil")  # a vLLM dependency
pytestmark = pytest.mark.vllm

VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}


def voxtral_args(root: Path) -> list[str]:
    model = save_voxtral_mistral(str(root / "voxtral"))
    return ["--model", model, "--realtime-model", "", "--max-model-len", "1000", "--max-reply-tokens", "8"]


def orpheus_args(root: Path) -> list[str]:
    model, snac = save_orpheus(str(root / "orpheus")), save_snac(str(root / "snac"))
    return [
        "--model",
        model,
        "--snac-model",
        snac,
        "--max-phrase-tokens",
        "28",
        "--vllm-max-model-len",
        "540",
    ]


def wait_for(what: str, found: Callable[[], object], svc: ServiceProcess, tries: int = 1200) -> object:
    """Poll ``found()`` (every 0.1 s, bounded) until it is truthy; fail with the log tail if not."""
    for _ in range(tries):
        if value := found():
            return value
        assert svc.returncode is None, f"{svc.name} exited before {what}:\n{svc.log_tail()}"
        time.sleep(0.1)
    raise AssertionError(f"no {what} after {tries / 10:.0f} s:\n{svc.log_tail()}")


def engine_cores(svc: ServiceProcess) -> list[Any]:
    assert svc.process is not None
    found = []
    for child in psutil.Process(svc.process.pid).children(recursive=True):
        try:
            # vLLM names its engine-core process (setproctitle): "VLLM::EngineCore".
            if "EngineCore" in " ".join(child.cmdline()) or "EngineCore" in child.name():
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("service", "args"), [("voxtral", voxtral_args), ("orpheus", orpheus_args)])
def test_while_vllm_loads_health_says_not_serving_and_sigterm_stops_the_service(
    service: str, args: Callable[[Path], list[str]], tmp_path: Path
) -> None:
    svc = ServiceProcess(
        service,
        free_port(),
        ["--engine", "vllm", "--dtype", "float32", "--metrics-port", "-1", *args(tmp_path)],
        VLLM_ENV,
    )
    frozen: list[Any] = []
    try:
        svc.start()
        cores = wait_for("vLLM engine core", lambda: engine_cores(svc), svc)
        assert isinstance(cores, list)
        for core in cores:
            core.suspend()  # SIGSTOP: the load cannot finish while the test holds it
            frozen.append(core)
        # Answered while the engine core is frozen mid-load: before the fix the loop was blocked
        # in vLLM's start-up poll and this timed out (UNREACHABLE).
        assert check_health(svc.address, timeout_s=30) == "NOT_SERVING"
        assert svc.process is not None
        svc.process.send_signal(signal.SIGTERM)

        def stopping() -> bool:
            return any(
                json.loads(line).get("msg", "").startswith("stopping during start-up")
                for line in Path(svc.log_path).read_text().splitlines()
                if line.startswith("{")
            )

        # Still frozen: the service stops without waiting for the load.
        wait_for("stop during start-up", stopping, svc, tries=600)
        for core in frozen:
            core.resume()  # its pending SIGTERM (multiprocessing stops daemonic children at exit) lands
        frozen.clear()
        assert svc.process.wait(120) == 0, svc.log_tail()
    finally:
        for core in frozen:
            with_suppressed_nsp(core.resume)
        svc.stop()


def with_suppressed_nsp(action: Callable[[], object]) -> None:
    try:
        action()
    except psutil.NoSuchProcess:
        pass
