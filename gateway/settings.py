"""Settings of the gateway process: flags and ``VOXMESH_GATEWAY_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from voxmesh.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VOXMESH_GATEWAY_", extra="ignore")

    port: int = 50051
    metrics_port: int = 9400
    vad_addr: str = Field("127.0.0.1:50052", description="vad service host:port")
    voxtral_addr: str = Field("127.0.0.1:50053", description="voxtral service host:port")
    orpheus_addr: str = Field("127.0.0.1:50054", description="orpheus service host:port")
    stage_timeout_s: float = Field(30.0, description="Deadline for one stage's answer within a turn")
    connect_timeout_s: float = Field(5.0, description="Deadline to open an upstream stream")
    session_idle_timeout_s: float = Field(300.0, description="Close a session with no input for this long")
    out_queue_size: int = Field(256, description="Messages buffered per client before the session is ended")
    default_voice: str = Field("", description="Voice when the client names none (orpheus default if empty)")
