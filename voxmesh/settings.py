"""The settings every service process shares; each service subclasses them
(``services/<name>/settings.py``, ``gateway/settings.py``) with its own env prefix.

Parsed once in ``main`` (never at import time) and logged at start-up with
secrets masked.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """What every gRPC service process shares."""

    model_config = SettingsConfigDict(extra="ignore")

    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0 in containers)")
    port: int = Field(0, description="gRPC port")
    metrics_port: int = Field(0, description="Prometheus /metrics HTTP port; -1 turns it off")
    grace_s: float = Field(10.0, description="SIGTERM: seconds in-flight streams get to finish")
    log_level: str = Field("info", description="debug, info, warning or error")
    max_sessions: int = Field(64, description="Concurrent streams; more get RESOURCE_EXHAUSTED")
    auth_token: SecretStr | None = Field(None, description="Bearer token required in metadata (off if unset)")
    auth_tokens_file: str | None = Field(
        None,
        description="File of accepted bearer tokens, one per line (one per client app: each its own "
        "session quota); re-read when it changes; beside auth_token",
    )
    tls_cert: str | None = Field(None, description="PEM certificate file; TLS is off if unset")
    tls_key: str | None = Field(None, description="PEM private key file for tls_cert")
    tls_ca: str | None = Field(
        None,
        description="PEM CA file: callers must present a certificate it signed (mutual TLS); needs tls_cert",
    )
    keepalive_time_s: float = Field(
        30.0, gt=0, description="Ping each client this often; one silent for a third of it more is dropped"
    )
    uvloop: bool = Field(True, description="Run the event loop on uvloop where installed")

    def masked(self) -> dict[str, object]:
        """The settings as a dict safe to log (secrets shown as '***')."""
        out: dict[str, object] = {}
        for name, value in self.model_dump().items():
            out[name] = "***" if isinstance(getattr(self, name), SecretStr) else value
        return out
