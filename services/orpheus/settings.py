"""Settings of the orpheus process: flags and ``VOXMESH_ORPHEUS_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from voxmesh.settings import ServiceSettings


class OrpheusSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VOXMESH_ORPHEUS_", extra="ignore")

    port: int = 50054
    metrics_port: int = 9403
    max_sessions: int = 32
    engine: str = Field("espeak", description="espeak, transformers, vllm or null (overhead benchmark)")
    model: str = Field("canopylabs/orpheus-3b-0.1-ft", description="Orpheus model: hub id or local path")
    snac_model: str = Field("hubertsiuzdak/snac_24khz", description="SNAC decoder: hub id or local path")
    device: str = Field("auto", description="transformers: cuda, cpu or auto")
    dtype: str = Field("auto", description="transformers: bfloat16, float16, float32 or auto")
    gpu_memory_utilization: float = Field(0.35, description="vllm: fraction of GPU memory for this model")
    voice: str = Field("tara", description="Default voice")
    temperature: float = Field(0.6, description="Sampling temperature (model card: 0.4-0.6)")
    top_p: float = Field(0.9, description="Nucleus sampling")
    repetition_penalty: float = Field(1.1, description="Repetition penalty (model card: 1.1)")
    max_phrase_tokens: int = Field(1200, description="Audio tokens cap per phrase (~14 s)")
    first_clause_chars: int = Field(
        24, ge=1, description="First phrase of a turn: cut at a comma once this long (time to first audio)"
    )
    clause_chars: int = Field(60, ge=1, description="Later phrases: cut at a comma once this long")
    max_phrase_chars: int = Field(
        180, ge=16, description="Cut run-on text at a space before this many characters (~12 s of speech)"
    )
    max_turn_chars: int = Field(
        20_000, ge=1, description="Reply text accepted per turn; more fails the turn (INVALID_ARGUMENT)"
    )
    max_queued_turns: int = Field(
        4, ge=1, description="Turns waiting behind the one being spoken; more → INVALID_ARGUMENT"
    )
