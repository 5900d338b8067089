"""GPU memory for the dashboards: what this process's torch allocated, and what each card has in use.

``voxmesh_gpu_memory_bytes`` (torch's allocator, this process) is right for
the transformers engines. vLLM's engines allocate in their own engine-core
process, which torch here cannot see, so the card's total use
(``voxmesh_gpu_device_memory_used_bytes`` / ``..._total_bytes``) comes from
NVML (``nvidia-ml-py``, in the ``gpu`` extra). NVML creates no CUDA context
(vLLM's front-end process must not hold one) and its device totals are right
inside containers, where its per-process pids are the host's and would not
match ours.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable

from voxmesh.metrics import GPU_DEVICE_MEMORY_TOTAL, GPU_DEVICE_MEMORY_USED, GPU_MEMORY

log = logging.getLogger(__name__)


def nvml_devices() -> Callable[[], list[tuple[int, int]]] | None:
    """A reader of (used, total) bytes per visible card, or None where NVML is not there."""
    try:
        import pynvml  # nvidia-ml-py

        pynvml.nvmlInit()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    except Exception as exc:  # not installed, no driver, no device: nothing to report
        log.debug("no NVML: %s", exc)
        return None

    def read() -> list[tuple[int, int]]:
        out = []
        for handle in handles:
            info = pynvml.nvmlDeviceGetMemoryInfo(handle)
            out.append((int(info.used), int(info.total)))
        return out

    return read


async def report_gpu_memory(period_s: float = 5.0) -> None:
    """Keep the GPU memory gauges current; returns at once on a machine without a GPU.

    Looks at torch only if an engine already imported it: the CPU services never
    pay for importing it.
    """
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return
    read_devices = nvml_devices()
    while True:
        for index in range(torch.cuda.device_count()):
            GPU_MEMORY.labels(f"cuda:{index}").set(torch.cuda.memory_allocated(index))
        if read_devices is not None:
            for index, (used, total) in enumerate(read_devices()):
                GPU_DEVICE_MEMORY_USED.labels(f"nvml:{index}").set(used)
                GPU_DEVICE_MEMORY_TOTAL.labels(f"nvml:{index}").set(total)
        await asyncio.sleep(period_s)
