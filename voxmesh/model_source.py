"""Where a model's weights come from, and one line when they cannot be loaded.

Loaders (transformers, huggingface_hub, vLLM, SNAC) fail with an ``OSError``
of some kind — huggingface_hub's HTTP, gated-repo, offline and cache-miss
errors all derive from it, and transformers re-raises hub failures as plain
``OSError`` without the model's name. :func:`not_loadable` turns one into a
:class:`ModelNotLoadable` that names the model, where it was looked for, and
what the operator can do, so ``voxmesh serve`` can say it in one line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

from voxmesh.errors import VoxmeshError

#: Engines that load model weights (the others ship theirs inside a wheel).
MODEL_ENGINES = ("transformers", "vllm")
#: What a model loader raises when the files are missing or unreachable.
LOAD_ERRORS: tuple[type[BaseException], ...] = (OSError,)


class ModelNotLoadable(VoxmeshError):
    """The weights are neither at the local path, nor in the cache, nor fetchable."""

    status = "FAILED_PRECONDITION"


def is_local_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~")) or os.path.exists(model)


def in_hub_cache(model: str) -> bool:
    """True if the hub cache holds a snapshot of ``model`` (checked offline)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except Exception:  # not a valid repo id, or huggingface_hub missing
        return False


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def failed_model(models: Mapping[str, str], exc: BaseException) -> tuple[str, str]:
    """The (flag, model) that failed: the one the error names, else the first not available here."""
    named = {flag: model for flag, model in models.items() if model}
    text = " ".join(str(cause) for cause in _causes(exc))
    for flag, model in named.items():
        if model in text:
            return flag, model
    for flag, model in named.items():
        local = is_local_path(model)
        if (local and not os.path.isdir(os.path.expanduser(model))) or (
            not local and not in_hub_cache(model)
        ):
            return flag, model
    return next(iter(named.items()))


def _where(model: str) -> str:
    if is_local_path(model):
        missing = "" if os.path.exists(os.path.expanduser(model)) else ", which does not exist"
        return f"the local path {model}{missing}"
    from huggingface_hub import constants

    offline = ", HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else ""
    has_token = bool(os.environ.get("HF_TOKEN")) or os.path.exists(constants.HF_TOKEN_PATH)
    token = "" if has_token else ", HF_TOKEN is not set"
    return f"the Hugging Face hub (not in the cache {constants.HF_HUB_CACHE}{offline}{token})"


def not_loadable(models: Mapping[str, str], exc: BaseException) -> ModelNotLoadable:
    """One line: which model, from where, why (the loader's first line), and what to do."""
    flag, model = failed_model(models, exc)
    reason = " ".join(str(exc).split("\n", 1)[0].split())[:200].rstrip(".") or type(exc).__name__
    if is_local_path(model):
        todo = f"point {flag} at a folder that holds the model's files (config.json and weights), or give its hub id"
    else:
        todo = (
            f"give a local folder with {flag} PATH, set HF_TOKEN (gated models also need their licence "
            "accepted on the hub), or mount the cache volume that holds the weights at HF_HOME"
        )
    return ModelNotLoadable(f"model {model!r} could not be loaded from {_where(model)}: {reason}; {todo}")
