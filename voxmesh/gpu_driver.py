"""The host's NVIDIA driver against the one the installed CUDA build of torch needs.

The torch that vLLM pins (docker/requirements-gpu.lock) ships CUDA 13
libraries, which need a kernel driver of the R580 branch or newer. On an older driver (a 570 host
passes a CUDA 12.8 ``nvidia-smi`` check) torch cannot use the GPU and the
stage crash-loops with a long traceback from deep inside vLLM. The GPU
services ask NVML (``nvidia-ml-py``, in the ``gpu`` extra) for the driver
version before loading anything and refuse in one line instead.

NVML is read, not CUDA: it creates no CUDA context (vLLM's front-end process
must not hold one) and works when CUDA itself refuses the driver. Where NVML
or a driver is missing there is nothing to compare, and CUDA's own error
stands.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from voxmesh.errors import VoxmeshError

log = logging.getLogger(__name__)

#: CUDA major version → the oldest Linux driver that runs it (CUDA's minor
#: version compatibility: any 13.x runtime on an R580+ driver).
MINIMUM_DRIVER: dict[int, tuple[int, ...]] = {13: (580,), 12: (525, 60, 13)}


class GpuDriverTooOld(VoxmeshError):
    """The host's NVIDIA driver cannot run this install's CUDA libraries."""

    status = "FAILED_PRECONDITION"


def parse_version(text: str) -> tuple[int, ...]:
    """``"580.65.06"`` → ``(580, 65, 6)``."""
    return tuple(int(part) for part in text.strip().split("."))


def driver_problem(driver: str | None, cuda: str | None) -> str | None:
    """One line on why ``driver`` cannot run CUDA ``cuda`` (e.g. "13.0"), or None when it can or is unknown."""
    if not driver or not cuda:
        return None
    needed = MINIMUM_DRIVER.get(parse_version(cuda)[0])
    if needed is None or parse_version(driver) >= needed:
        return None
    wanted = ".".join(str(n) for n in needed)
    major = cuda.split(".")[0]
    return (
        f"NVIDIA driver {driver} is too old for the CUDA {cuda} libraries of this install's torch: "
        f"it needs driver >= {wanted}; update the host's driver, or on RunPod pick a pod whose "
        f"CUDA version filter is {major}.0 or newer"
    )


def nvml_driver_version() -> str | None:
    """The kernel driver's version as NVML reports it, or None without NVML or a driver."""
    try:
        import pynvml  # nvidia-ml-py

        pynvml.nvmlInit()
    except Exception as exc:  # not installed, no driver: nothing to compare
        log.debug("no NVML: %s", exc)
        return None
    try:
        version = pynvml.nvmlSystemGetDriverVersion()
    finally:
        pynvml.nvmlShutdown()
    return version.decode() if isinstance(version, bytes) else str(version)


def torch_cuda_version() -> str | None:
    """The CUDA version torch was built with ("13.0"), or None for a CPU build or no torch."""
    try:
        import torch
    except ImportError:
        return None
    cuda: str | None = torch.version.cuda
    return cuda


def check_driver_for_engine(
    engine: str,
    device: str = "auto",
    read_driver: Callable[[], str | None] = nvml_driver_version,
    read_cuda: Callable[[], str | None] = torch_cuda_version,
) -> None:
    """Refuse to start a GPU engine on a driver its CUDA libraries cannot use.

    ``vllm`` and ``transformers --device cuda`` need the GPU: raise
    :class:`GpuDriverTooOld`. ``transformers --device auto`` would fall back
    to the CPU: log the same line as a warning. CPU engines are not checked.
    """
    needs_gpu = engine == "vllm" or (engine == "transformers" and device == "cuda")
    may_use_gpu = engine == "transformers" and device == "auto"
    if not (needs_gpu or may_use_gpu):
        return
    problem = driver_problem(read_driver(), read_cuda())
    if problem is None:
        return
    if needs_gpu:
        raise GpuDriverTooOld(problem)
    log.warning("%s; running on the CPU", problem)
