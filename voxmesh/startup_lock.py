"""One vLLM engine at a time initialises on a shared GPU: a start-up lock on a file both can see.

When two vLLM engines profile memory on one card at the same time, each
counts the other's allocations as its own (vLLM issue #55827): the KV cache
shrinks, or start-up fails with "No available memory for the cache blocks".
Compose's ``depends_on`` orders them only at ``compose up`` (a reboot under
``restart: unless-stopped`` starts both together), Kubernetes does not order
pods, and ``voxmesh up`` starts its stages together. So each engine holds an
exclusive ``flock`` on a shared path while it initialises (weights, memory
profile, KV cache, CUDA graphs) and releases it once its memory is taken.

``flock`` rather than a pid file: the kernel drops the lock when the holder
dies, even by ``kill -9``, so a crashed start-up never leaves a stale lock.
The path may be a file (created if missing) or a directory, which is opened
read-only and locked itself: a root-owned host directory (a Kubernetes
``hostPath``) works for uid 10001 without being writable. Containers that
bind-mount the same directory (a compose volume, a node's ``hostPath``) share
the lock, since it belongs to the inode.

Waiting polls with a non-blocking ``flock`` on the event loop: cancelling the
start-up (SIGTERM while waiting) leaves no thread stuck in the kernel.

The setting's default, ``auto``, locks a file in the temp directory when NVML
sees a GPU (``voxmesh up --profile gpu`` on one host), and nothing on a
machine without one: vLLM's CPU engines (the tests) share no card, and
serialising them across unrelated runs would only slow them down.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable

from voxmesh import logs
from voxmesh.gpu_memory import nvml_devices

log = logging.getLogger(__name__)

#: How often a waiting engine tries the lock again.
POLL_S = 0.2
AUTO = "auto"


def nvml_sees_a_gpu() -> bool:
    read = nvml_devices()
    return read is not None and bool(read())


def resolve(path: str, has_gpu: Callable[[], bool] = nvml_sees_a_gpu) -> str:
    """The lock path a setting means: ``auto`` → the temp directory's lock on a GPU host, else none."""
    if path != AUTO:
        return path
    return os.path.join(tempfile.gettempdir(), "voxmesh-gpu-startup.lock") if has_gpu() else ""


def _open(path: str) -> int:
    if os.path.isdir(path):
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    # O_RDONLY is enough for flock, so an existing lock file owned by another
    # user (a shared volume) can still be locked.
    return os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)


@contextlib.asynccontextmanager
async def gpu_startup_lock(
    path: str, what: str, on_wait: Callable[[], None] | None = None
) -> AsyncIterator[None]:
    """Hold the start-up lock at ``path`` (no lock when empty; see :func:`resolve` for ``auto``)
    while ``what`` initialises.

    ``on_wait`` runs once when another holder makes this one wait (tests watch it).
    """
    path = resolve(path)
    if not path:
        yield
        return
    fd = _open(path)
    try:
        started = time.monotonic()
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    waited = True
                    log.info(
                        "waiting for another engine to finish starting on this GPU",
                        extra=logs.fields(engine=what, lock=path),
                    )
                    if on_wait is not None:
                        on_wait()
                await asyncio.sleep(POLL_S)
        log.info(
            "GPU start-up lock taken",
            extra=logs.fields(engine=what, lock=path, waited_s=round(time.monotonic() - started, 1)),
        )
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            log.info("GPU start-up lock released", extra=logs.fields(engine=what, lock=path))
    finally:
        os.close(fd)
