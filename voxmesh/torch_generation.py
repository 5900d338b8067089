"""What every transformers engine needs around ``model.generate``: the device and
dtype from a setting, the static-cache choice, a streamer of new token ids,
and a stop flag.

torch is imported inside the functions: this module is imported by engines
that the lean CPU install (no torch) never loads, but keeping the imports
lazy means importing it can never be what fails.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from voxmesh.errors import EngineUnavailable, InvalidArgument

if TYPE_CHECKING:
    import torch


def pick_device(setting: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; asking for CUDA without it is an error."""
    import torch

    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise EngineUnavailable(f"device: {setting!r} asked for but CUDA is not available")
    return torch.device(setting)


#: ``--static-cache``: a static KV cache lets transformers compile the decode step
#: (CUDA graphs on CUDA); auto = on CUDA only, where it cuts per-token latency.
STATIC_CACHE_CHOICES = ("auto", "on", "off")


def use_static_cache(setting: str, device: torch.device) -> bool:
    """Whether ``generate`` runs with ``cache_implementation="static"`` (one call at a time then)."""
    if setting not in STATIC_CACHE_CHOICES:
        raise InvalidArgument("static_cache", f"{setting!r}: choose one of {', '.join(STATIC_CACHE_CHOICES)}")
    return setting == "on" or (setting == "auto" and device.type == "cuda")


def pick_dtype(setting: str, device: torch.device) -> torch.dtype:
    """``auto`` → bfloat16 on CUDA, float32 elsewhere (CPU bf16 matmuls are slow)."""
    import torch

    if setting == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    dtype = getattr(torch, setting, None)
    if not isinstance(dtype, torch.dtype):
        raise InvalidArgument("dtype", f"unknown torch dtype {setting!r}")
    return dtype


class IdStreamer:
    """A ``generate`` streamer that hands each step's new ids to a callback (the prompt is skipped)."""

    def __init__(self, on_ids: Callable[[list[int]], None]) -> None:
        self._on_ids = on_ids
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self._on_ids(value.reshape(-1).tolist())

    def end(self) -> None:
        pass


class ChosenTokenProbabilities:
    """A logits processor that records, per step, the probability of the token greedy
    decoding picks (the most likely one); it changes no score. For transcripts only:
    sampled replies would need the sampled token, which a processor never sees.
    """

    def __init__(self) -> None:
        self.values: list[float] = []

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        self.values.append(float(torch.softmax(scores[0].float(), dim=-1).max()))
        return scores


class StopFlag:
    """A stopping criterion set from another thread: the consumer went away (cancel, barge-in)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full(
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )
