"""The turn-taking a mesh ships with: what ``voxmesh up`` (so ``make run``), compose, the chart and the images run.

Each service's own defaults stay conservative (silence-only endpointing, no
speculation), so ``voxmesh serve vad`` alone needs no model file; the shipped
mesh adds the fast path measured in BENCHMARKS.md ("Fast by default"):

- vad: Smart Turn v3.2 judges each pause at 150 ms of real silence (the end of
  speech is the last voiced sample, services/vad/voice_edge.py); P >= 0.9 ends
  the turn there, below that it ends at 700 ms. (The doubtful band, ending
  0.1 <= P < 0.9 at 400 ms, measured twice the splits for no gain in p50 on
  the client benchmark, so it is off: BENCHMARKS.md, "Fast by default".)
- gateway: a tentative reply starts at 100 ms of silence, and an endpoint whose
  words end unfinished ("… book a") is held up to 1000 ms from the last voiced sample.

``--end-of-turn silence`` (env ``VOXMESH_END_OF_TURN=silence``) is the one
setting that goes back to silence-only endpointing (vad's 500 ms hangover).

The model file is looked for where ``make`` puts it (``.tools/models``, taken
from the pipecat-ai wheel at install) and where the images bake it
(``/opt/voxmesh/models``, services/vad/smart_turn_install.py); the hub repo is
the fallback vad fetches from.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from voxmesh.services.vad.smart_turn import MODEL_FILE

#: Where a Smart Turn file is looked for, in order (``VOXMESH_SMART_TURN_DIR`` first).
MODEL_DIRS = (".tools/models", "/opt/voxmesh/models", "~/.cache/voxmesh/models")

#: service → (settings field, value): flags ``voxmesh up`` passes unless the field's env var is set.
FAST = {
    "vad": (
        ("end_of_turn", "smart-turn"),
        ("turn_complete_hangover_ms", "150"),
        ("turn_complete_threshold", "0.9"),
        ("turn_incomplete_hangover_ms", "700"),
    ),
    "gateway": (
        ("speculate_after_ms", "100"),
        ("hold_unfinished_ms", "1000"),
    ),
}
SILENCE = {"vad": (("end_of_turn", "silence"),), "gateway": ()}


def find_smart_turn_model() -> str | None:
    """A local Smart Turn file, or None (vad then fetches it from the hub)."""
    dirs = [os.environ.get("VOXMESH_SMART_TURN_DIR", ""), *MODEL_DIRS]
    for folder in filter(None, dirs):
        path = Path(folder).expanduser() / MODEL_FILE
        if path.is_file():
            return str(path.resolve())
    return None


def model_runtime_missing() -> str | None:
    """Why Smart Turn cannot run in this install (the GPU image's lock has no onnxruntime), or None."""
    if importlib.util.find_spec("onnxruntime") is None:
        return "the end-of-turn model needs onnxruntime, which is not installed (pip install onnxruntime)"
    return None


def stage_flags(end_of_turn: str) -> dict[str, list[str]]:
    """Service → the command-line flags that give it the shipped turn-taking.

    A setting whose ``VOXMESH_<SERVICE>_<FIELD>`` variable is set is left to it
    (flags would win over the environment).
    """
    chosen = FAST if end_of_turn == "smart-turn" else SILENCE
    out: dict[str, list[str]] = {}
    for service, settings in chosen.items():
        flags = []
        for field, value in settings:
            if f"VOXMESH_{service.upper()}_{field.upper()}" not in os.environ:
                flags += [f"--{field.replace('_', '-')}", value]
        out[service] = flags
    if end_of_turn == "smart-turn" and "VOXMESH_VAD_SMART_TURN_MODEL" not in os.environ:
        if (model := find_smart_turn_model()) is not None:
            out["vad"] += ["--smart-turn-model", model]
    return out
