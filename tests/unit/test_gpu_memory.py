"""The GPU memory gauges' readers: NVML's card totals, and nothing where there is no GPU."""

from __future__ import annotations

import importlib.util

import pytest

from voxmesh.gpu_memory import nvml_devices


@pytest.mark.skipif(
    importlib.util.find_spec("pynvml") is not None, reason="NVML's Python binding is installed"
)
def test_without_nvml_there_is_no_reader() -> None:
    assert nvml_devices() is None


@pytest.mark.gpu
def test_nvml_sees_memory_another_allocation_takes() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("pynvml")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    torch.cuda.init()  # the context first: it takes memory of its own
    read = nvml_devices()
    assert read is not None
    (used_before, total), *_ = read()
    block = torch.empty(512 * 2**20, dtype=torch.uint8, device="cuda")
    (used_after, _), *_ = read()
    assert 0 < used_before < used_after <= total
    assert used_after - used_before >= 400 * 2**20  # the 512 MiB block, less allocator rounding slack
    del block
