"""The driver check: version comparison and the one-line refusal, behind a fake NVML.

The only fake is the NVML boundary (a stand-in ``pynvml`` module reporting a
driver version) and which CUDA build torch is (the CPU torch here has none).
"""

from __future__ import annotations

import sys
import types

import pytest

from voxmesh.gpu_driver import (
    GpuDriverTooOld,
    check_driver_for_engine,
    driver_problem,
    nvml_driver_version,
    parse_version,
)


def fake_nvml(monkeypatch: pytest.MonkeyPatch, version: str | bytes | None) -> list[str]:
    """Install a stand-in ``pynvml``; ``None`` acts as a host without a driver. Returns its call log."""
    calls: list[str] = []

    def init() -> None:
        calls.append("init")
        if version is None:
            raise RuntimeError("NVML Shared Library Not Found")

    module = types.ModuleType("pynvml")
    module.nvmlInit = init  # type: ignore[attr-defined]
    module.nvmlSystemGetDriverVersion = lambda: version  # type: ignore[attr-defined]
    module.nvmlShutdown = lambda: calls.append("shutdown")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", module)
    return calls


def test_parse_version() -> None:
    assert parse_version("580.65.06") == (580, 65, 6)
    assert parse_version("570.124.06") < parse_version("580") <= parse_version("580.0.1")


@pytest.mark.parametrize(
    ("driver", "cuda", "too_old"),
    [
        ("570.124.06", "13.0", True),  # passes a CUDA 12.8 nvidia-smi, cannot run CUDA 13
        ("575.57.08", "13.0", True),
        ("580.65.06", "13.0", False),
        ("580.95.05", "13.0", False),
        ("590.44.01", "13.0", False),
        ("570.124.06", "12.8", False),
        ("520.61.05", "12.1", True),
        ("570.124.06", None, False),  # CPU build of torch: nothing to check
        (None, "13.0", False),  # no driver / no NVML: CUDA's own error stands
    ],
)
def test_driver_problem(driver: str | None, cuda: str | None, too_old: bool) -> None:
    assert (driver_problem(driver, cuda) is not None) is too_old


def test_the_message_is_one_line_with_both_versions_and_the_fix() -> None:
    message = driver_problem("570.124.06", "13.0")
    assert message is not None
    assert "\n" not in message
    assert "570.124.06" in message and ">= 580" in message and "CUDA 13.0" in message
    assert "RunPod" in message


def test_nvml_driver_version_reads_and_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_nvml(monkeypatch, b"570.124.06")
    assert nvml_driver_version() == "570.124.06"
    assert calls == ["init", "shutdown"]
    fake_nvml(monkeypatch, "580.65.06")
    assert nvml_driver_version() == "580.65.06"
    fake_nvml(monkeypatch, None)
    assert nvml_driver_version() is None


def test_gpu_engines_refuse_an_old_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvml(monkeypatch, "570.124.06")

    def cuda13() -> str:
        return "13.0"

    for engine, device in (("vllm", "auto"), ("transformers", "cuda")):
        with pytest.raises(GpuDriverTooOld, match=r"570\.124\.06 is too old"):
            check_driver_for_engine(engine, device, read_cuda=cuda13)
    # Engines that do not need the GPU start as before.
    for engine, device in (("echo", "auto"), ("espeak", "auto"), ("transformers", "cpu")):
        check_driver_for_engine(engine, device, read_cuda=cuda13)


def test_transformers_auto_only_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake_nvml(monkeypatch, "570.124.06")
    check_driver_for_engine("transformers", "auto", read_cuda=lambda: "13.0")
    assert "too old" in caplog.text and "running on the CPU" in caplog.text


def test_a_new_enough_driver_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvml(monkeypatch, "580.65.06")
    check_driver_for_engine("vllm", read_cuda=lambda: "13.0")
