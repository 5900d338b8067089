"""How a phrase's generation stopped: one vocabulary, log line and metric for both model engines.

A phrase stops at an end-of-speech id (``end_of_speech``), at the phrase
token cap (``token_cap``), or because its turn was cancelled and the engine
stopped the model (``cancelled``: vLLM aborts the request, transformers sets
its stop flag). Engines decide the reason from the ids *before* handing them
on: the audio reader closes the token generator as soon as it sees an end
id, and that close must not be taken for a cancel (which would abort a
request that had already finished and log a normal phrase as cancelled).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

from prometheus_client import Counter

from voxmesh import logs
from voxmesh.services.orpheus.orpheus_tokens import END_OF_SPEECH_IDS

log = logging.getLogger(__name__)

StopReason = Literal["end_of_speech", "token_cap", "cancelled"]

GENERATIONS_STOPPED = Counter(
    "voxmesh_orpheus_generations_total",
    "Phrase generations by how they stopped (end_of_speech, token_cap, cancelled)",
    ["engine", "reason"],
)


def stop_reason(new_ids: Sequence[int], tokens: int, max_tokens: int) -> StopReason | None:
    """Why generation ends with ``new_ids`` (``tokens`` generated in all), or None while it goes on."""
    if new_ids and new_ids[-1] in END_OF_SPEECH_IDS:
        return "end_of_speech"
    if tokens >= max_tokens:
        return "token_cap"
    return None


def report_stopped(engine: str, reason: StopReason, tokens: int) -> None:
    GENERATIONS_STOPPED.labels(engine, reason).inc()
    log.info("generation stopped", extra=logs.fields(engine=engine, reason=reason, tokens=tokens))
