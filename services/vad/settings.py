"""Settings of the vad process: flags and ``VOXMESH_VAD_*`` environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from voxmesh.settings import ServiceSettings


class VadSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VOXMESH_VAD_", extra="ignore")

    port: int = 50052
    metrics_port: int = 9401
    engine: Literal["webrtcvad", "silero"] = Field("webrtcvad", description="VAD engine")
    pre_roll_ms: int = Field(300, description="Audio kept before the onset, ms")
    hangover_ms: int = Field(500, description="Silence before speech is called ended, ms")
    min_speech_ms: int = Field(90, description="Voiced audio needed to call speech started, ms")
