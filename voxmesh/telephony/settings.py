"""Settings of the phone edge: flags and ``VOXMESH_TELEPHONY_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from voxmesh.edge_settings import EdgeSettings

#: The phone edge's WebSocket/HTTP port and metrics port (the Realtime edge has 8080 and 9404).
TELEPHONY_PORT = 8081
TELEPHONY_METRICS_PORT = 9405


class TelephonySettings(EdgeSettings):
    """``auth_token``/``auth_tokens_file``, if set, are checked before any call audio is accepted."""

    model_config = SettingsConfigDict(env_prefix="VOXMESH_TELEPHONY_", extra="ignore")

    port: int = TELEPHONY_PORT
    metrics_port: int = TELEPHONY_METRICS_PORT
    voice: str = Field("", description="Voice of the replies (empty: the gateway's default)")
    language: str = Field("", description="BCP-47 language of the calls (empty: the gateway's default)")
    system_prompt: str = Field(
        "You are answering a phone call. Keep answers short and spoken; never use lists or markup.",
        description="Instructions for every call",
    )
    max_message_bytes: int = Field(
        64 * 1024,
        description="Largest WebSocket message accepted (a 20 ms Twilio media message is ~400 bytes)",
    )
    max_media_ms: int = Field(
        1000, description="Most audio one inbound media message may carry, ms (Twilio sends 20 ms)"
    )
    start_timeout_s: float = Field(
        10.0, description="A stream that has not said 'start' (with its token) after this long is closed"
    )
    mark_interval_ms: int = Field(
        400,
        description="Reply audio between two marks at most, ms: the history of a barge-in is cut at the "
        "last mark the phone side played, so this bounds how much heard audio it can miss",
    )
    send_timeout_s: float = Field(
        10.0, description="A phone side that has not taken a message after this long is disconnected"
    )
