"""Settings of the voxtral process: flags and ``VOXMESH_VOXTRAL_*`` environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from voxmesh.settings import ServiceSettings


class VoxtralSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VOXMESH_VOXTRAL_", extra="ignore")

    port: int = 50053
    metrics_port: int = 9402
    max_sessions: int = 32
    engine: str = Field("echo", description="echo, transformers or vllm")
    mode: Literal["audio", "stream", "transcribe"] = Field("stream", description="Default turn mode")
    model: str = Field("mistralai/Voxtral-Mini-3B-2507", description="Reply model: hub id or local path")
    realtime_model: str = Field(
        "mistralai/Voxtral-Mini-4B-Realtime-2602", description="Live-transcription model for stream mode"
    )
    device: str = Field("auto", description="transformers: cuda, cpu or auto")
    dtype: str = Field("auto", description="transformers: bfloat16, float16, float32 or auto")
    static_cache: str = Field(
        "auto",
        description="transformers: static KV cache + compiled decode step (auto = on CUDA only), on or off",
    )
    gpu_memory_utilization: float = Field(0.4, description="vllm: fraction of GPU memory for the reply model")
    realtime_gpu_memory_utilization: float = Field(
        0.2, description="vllm: fraction of GPU memory for the realtime (live transcript) model"
    )
    gpu_startup_lock: str = Field(
        "auto",
        description="vllm: lock file (or directory) held while an engine starts, one engine at a time "
        "per shared GPU; auto: one in the temp directory when a GPU is present; empty: none",
    )
    max_model_len: int = Field(8192, description="Context length (prompt + reply), tokens")
    history_tokens: int = Field(4096, description="Token budget for conversation history")
    max_reply_tokens: int = Field(256, description="Reply length cap, tokens")
    temperature: float = Field(0.2, description="Sampling temperature (model card: 0.2)")
    top_p: float = Field(0.95, description="Nucleus sampling (model card: 0.95)")
    max_utterance_s: float = Field(30.0, description="Longest utterance accepted, seconds")
    max_open_turns: int = Field(
        4,
        ge=2,
        description="Turns open at once on one Respond stream (a reply and the next utterance: 2)",
    )
    realtime_delay_ms: int = Field(480, description="stream mode: transcription delay, 80 ms steps")
    realtime_probe_timeout_s: float = Field(
        120.0,
        gt=0,
        description="Start-up: longest wait for the realtime model to transcribe 1 s of silence; "
        "past it (or on an error) live transcripts are off and stream mode transcribes at end of turn",
    )
