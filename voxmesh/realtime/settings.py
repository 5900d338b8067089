"""Settings of the Realtime edge: flags and ``VOXMESH_REALTIME_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from voxmesh.edge_settings import EdgeSettings


class RealtimeSettings(EdgeSettings):
    """``port`` is the WebSocket port; ``auth_token``, if set, is checked here before the gateway checks it too."""

    model_config = SettingsConfigDict(env_prefix="VOXMESH_REALTIME_", extra="ignore")

    port: int = 8080
    metrics_port: int = 9404
    max_message_bytes: int = Field(
        16 * 1024 * 1024, description="Largest WebSocket message accepted (OpenAI's append limit is 15 MiB)"
    )
    send_timeout_s: float = Field(
        10.0, description="A client that has not taken an event after this long is disconnected (1008)"
    )
    send_buffer_bytes: int = Field(
        256 * 1024,
        description="Kernel send buffer per socket: bounds what a client that stops reading can hold (0: OS default)",
    )
    max_buffer_s: float = Field(60.0, description="Uncommitted audio held with turn detection off, seconds")
    commit_silence_ms: int = Field(
        1000, description="Silence sent after committed audio so the VAD ends the turn (above its hangover)"
    )
