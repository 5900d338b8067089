"""The exit statuses of ``voxmesh serve`` and ``voxmesh up``, for whoever restarts them.

A supervisor (``voxmesh up``, Docker's restart policy, Kubernetes) can tell a
crash worth retrying from a start-up that will fail the same way every time
until someone acts. The README's "Exit statuses" table documents these.
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    OK = 0
    #: A failure at run time: a crash, or under ``voxmesh up`` a service that
    #: kept dying after its restarts.
    FAILED = 1
    #: Start-up refused: invalid settings, an engine that is not installed, an
    #: NVIDIA driver too old for the CUDA build.
    BAD_SETUP = 2
    #: A model could not be loaded: not a local path, not in the cache, and the
    #: hub unreachable or refusing (a gated model without ``HF_TOKEN``).
    MODEL_NOT_LOADABLE = 3
    #: ``voxmesh up --profile gpu`` found no CUDA device.
    NO_GPU = 4


#: Statuses a restart cannot fix: ``voxmesh up`` gives up on them at once.
PERMANENT = frozenset({ExitStatus.BAD_SETUP, ExitStatus.MODEL_NOT_LOADABLE})
