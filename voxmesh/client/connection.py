"""How the SDK reaches the gateway: credentials, keepalive, and the connect deadline.

Shared by the async and the blocking API. Without keepalive a client whose
gateway froze or vanished behind a NAT waits forever; without a connect
deadline ``connect()`` did (still waiting after 25 s against a SIGSTOPped
gateway).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc

from voxmesh.client.errors import Unavailable

#: Default deadline for ``connect()``: the channel up and SessionStarted back.
CONNECT_TIMEOUT_S = 10.0
#: Ping the gateway this often. Servers refuse pings closer than 10 s apart on a
#: quiet stream (GOAWAY after two strikes): 20 s leaves room for timer jitter.
KEEPALIVE_S = 20.0
#: A ping unanswered this long means the gateway is gone.
KEEPALIVE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Connection:
    """Where and how to reach the gateway."""

    gateway: str
    tls: bool = False
    #: PEM CA to trust (None: the system roots).
    root_certificates: bytes | None = None
    #: PEM client certificate and key, for a gateway that requires them (``--tls-ca``).
    client_cert: bytes | None = None
    client_key: bytes | None = None
    connect_timeout_s: float = CONNECT_TIMEOUT_S

    def __post_init__(self) -> None:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together")
        if self.client_cert is not None and not self.tls:
            raise ValueError("a client certificate needs tls=True")
        if self.connect_timeout_s <= 0:
            raise ValueError("connect_timeout_s must be positive")

    @property
    def options(self) -> list[tuple[str, Any]]:
        return [
            ("grpc.keepalive_time_ms", int(KEEPALIVE_S * 1000)),
            ("grpc.keepalive_timeout_ms", int(KEEPALIVE_TIMEOUT_S * 1000)),
            ("grpc.http2.ping_timeout_ms", int(KEEPALIVE_TIMEOUT_S * 1000)),
        ]

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.root_certificates, self.client_key, self.client_cert)

    def aio_channel(self) -> grpc.aio.Channel:
        if self.tls:
            return grpc.aio.secure_channel(self.gateway, self.credentials(), options=self.options)
        return grpc.aio.insecure_channel(self.gateway, options=self.options)

    def channel(self) -> grpc.Channel:
        if self.tls:
            return grpc.secure_channel(self.gateway, self.credentials(), options=self.options)
        return grpc.insecure_channel(self.gateway, options=self.options)

    def timed_out(self) -> Unavailable:
        return Unavailable(
            "UNAVAILABLE",
            f"no answer from the gateway at {self.gateway} within {self.connect_timeout_s:g} s (connect_timeout_s)",
        )
