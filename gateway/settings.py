"""Settings of the gateway process: flags and ``VOXMESH_GATEWAY_*`` environment variables."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from voxmesh.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VOXMESH_GATEWAY_", extra="ignore")

    port: int = 50051
    metrics_port: int = 9400
    # Stage addresses are any gRPC target: host:port (one replica), dns:///name:port
    # (re-resolved: a headless Service), ipv4:a:port,b:port (a fixed list of replicas).
    vad_addr: str = Field(
        "127.0.0.1:50052", description="vad replicas: host:port, dns:///name:port or ipv4:a:p,b:p"
    )
    voxtral_addr: str = Field(
        "127.0.0.1:50053", description="voxtral replicas: host:port, dns:///name:port or ipv4:a:p,b:p"
    )
    orpheus_addr: str = Field(
        "127.0.0.1:50054", description="orpheus replicas: host:port, dns:///name:port or ipv4:a:p,b:p"
    )
    stage_resolve_interval_s: float = Field(
        5.0, gt=0, description="dns:/// stage targets are re-resolved this often (new replicas found)"
    )
    stage_timeout_s: float = Field(30.0, description="Deadline for one stage's answer within a turn")
    connect_timeout_s: float = Field(5.0, description="Deadline to open an upstream stream")
    session_idle_timeout_s: float = Field(
        300.0, gt=0, description="Close a session with no input and no turn in progress for this long"
    )
    first_message_timeout_s: float = Field(
        10.0, gt=0, description="Close a stream whose SessionConfig has not come this long after it opened"
    )
    max_sessions_per_client: int = Field(
        0, ge=0, description="Open sessions per client (its token, else its IP); 0: only max_sessions applies"
    )
    max_input_messages_per_s: float = Field(
        1000.0, ge=0, description="Client messages per second a session may send (10 s burst); 0: no limit"
    )
    max_input_messages_per_client_s: float = Field(
        0.0,
        ge=0,
        description="Messages per second one client's sessions may send together (1 s burst); past it "
        "they are read more slowly, not refused; 0: off",
    )
    out_queue_size: int = Field(256, description="Messages buffered per client before the session is ended")
    default_voice: str = Field("", description="Voice when the client names none (orpheus default if empty)")
    speculate_after_ms: int = Field(
        200,
        ge=0,
        le=5000,
        description="Silence in an utterance after which the reply is written tentatively, released at "
        "the endpoint or dropped if the user speaks on (below vad's hangover to help); 0: off",
    )
    hold_unfinished_ms: int = Field(
        1000,
        ge=0,
        le=5000,
        description="When the words so far end unfinished ('book a', 'the weather in'), vad's endpoint "
        "is held until the pause reaches this, from the last voiced sample; speech before then "
        "continues the turn (English only); 0: off",
    )
    tool_result_timeout_s: float = Field(
        30.0,
        gt=0,
        description="A ToolCall with no ToolResult by then is cancelled at the client and the reply is "
        "told that the tool failed, so nothing stays in progress",
    )
    barge_in_min_speech_ms: int = Field(
        350,
        ge=0,
        le=5000,
        description="Voiced audio that makes speech during a reply a barge-in (shorter sounds pause it, then it resumes); 0: any speech interrupts",
    )
    # What the gateway presents to the stages (see voxmesh.gateway.stage_credentials).
    stage_auth_token: SecretStr | None = Field(
        None, description="Bearer token sent to every stage (their --auth-token); off if unset"
    )
    stage_auth_token_file: str | None = Field(
        None, description="File holding the stage token (first line), instead of stage_auth_token"
    )
    stage_tls_ca: str | None = Field(
        None, description="PEM CA that signed the stages' certificates; TLS to the stages if set"
    )
    stage_tls_cert: str | None = Field(
        None, description="PEM client certificate shown to the stages (mutual TLS)"
    )
    stage_tls_key: str | None = Field(None, description="PEM private key of stage_tls_cert")
    stage_tls_server_name: str | None = Field(
        None, description="Name the stages' certificates carry, when they are dialled by IP (dns:/// targets)"
    )
