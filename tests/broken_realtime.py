"""Break Voxtral Realtime's request path inside a service process, on purpose.

The fallback tests need a realtime model whose path fails the way a vLLM or
transformers release that moved an internal would: at start-up, or only at
request time. The service is the real ``voxmesh serve voxtral`` process;
a ``sitecustomize`` module on its ``PYTHONPATH`` wraps one method so that
every call from the ``after``-th on (counting from 0) raises. The start-up
probe is the process's first call, so ``after=0`` fails the probe and
``after=1`` lets the probe pass and fails every utterance after it.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Logged by the broken method, so a test can tell its failure from any other.
BROKEN = "realtime path broken on purpose (test)"

_SITECUSTOMIZE = f'''
import os

_spec = os.environ.get("VOXMESH_TEST_BREAK_REALTIME")
if _spec:
    import importlib
    import itertools

    _module, _qualname, _after = _spec.split(":")
    _owner_name, _method = _qualname.split(".")
    _owner = getattr(importlib.import_module(_module), _owner_name)
    _original = getattr(_owner, _method)
    _calls = itertools.count()

    def _broken(*args, **kwargs):
        if next(_calls) >= int(_after):
            raise RuntimeError({BROKEN!r})
        return _original(*args, **kwargs)

    setattr(_owner, _method, _broken)
'''


def broken_realtime_env(directory: Path, method: str, after: int) -> dict[str, str]:
    """Environment for a service whose ``method`` ("module:Class.name") fails from call ``after`` on."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(directory), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "VOXMESH_TEST_BREAK_REALTIME": f"{method}:{after}"}
