"""What the gateway presents to its stages: a bearer token and, optionally, a client certificate.

Each stage checks ``--auth-token`` on every call (``voxmesh.grpc_errors``)
and, with ``--tls-ca``, requires a client certificate signed by that CA. The
gateway's side is ``--stage-auth-token`` (sent as ``authorization: Bearer``
on every stage call) and ``--stage-tls-ca`` / ``--stage-tls-cert`` /
``--stage-tls-key`` (TLS to the stages; the cert and key make it mutual).

The token rides on a channel interceptor rather than the call's metadata, so
every stream on every replica channel carries it, whoever opens the stream.
gRPC's own call credentials are refused on plaintext channels, and a mesh
inside one pod network may run the token without TLS.

``--stage-auth-token-file`` is read again when its modification time changes
(as the stages read their ``--auth-tokens-file``): a rotated Secret takes
effect on the next stream and the next stage check, without a restart.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from voxmesh.bearer_tokens import parse_tokens
from voxmesh.errors import InvalidArgument
from voxmesh.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


class _BearerToken(grpc.aio.StreamStreamClientInterceptor):
    """Adds ``authorization: Bearer <token>`` to every stream the channel opens."""

    def __init__(self, token: StageToken) -> None:
        self._token = token

    async def intercept_stream_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: Any,
    ) -> Any:
        metadata = [m for m in (client_call_details.metadata or ()) if m[0] != "authorization"]
        details = grpc.aio.ClientCallDetails(
            client_call_details.method,
            client_call_details.timeout,
            grpc.aio.Metadata(*metadata, ("authorization", f"Bearer {self._token.current()}")),
            client_call_details.credentials,
            client_call_details.wait_for_ready,
        )
        return await continuation(details, request_iterator)


def _read(path: str, flag: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidArgument(flag, f"cannot read {path}: {exc.strerror}") from exc


class StageToken:
    """The token presented to the stages: ``stage_auth_token``, or the first token of its file.

    The file is read at start-up (a missing or empty one stops the gateway
    there) and again whenever its modification time changes; a file that is
    briefly missing or empty mid-rotation (a Secret's symlink swap) keeps
    the token read before.
    """

    def __init__(self, settings: GatewaySettings) -> None:
        self._path = settings.stage_auth_token_file
        self._mtime_ns = -1
        self._token = settings.stage_auth_token.get_secret_value() if settings.stage_auth_token else ""
        if self._path:
            if settings.stage_auth_token:
                raise InvalidArgument("stage_auth_token_file", "set stage_auth_token or its file, not both")
            self._token = self._read_file()
            self._mtime_ns = os.stat(self._path).st_mtime_ns

    @property
    def configured(self) -> bool:
        """Whether the gateway presents a token at all."""
        return bool(self._token)

    @property
    def flag(self) -> str:
        """Where the token comes from, as the operator set it."""
        return "--stage-auth-token-file" if self._path else "--stage-auth-token"

    def current(self) -> str:
        if self._path:
            self._reload()
        return self._token

    def _read_file(self) -> str:
        assert self._path is not None
        # Written like a tokens file (comments allowed); the first token is presented.
        tokens = parse_tokens(_read(self._path, "stage_auth_token_file").decode())
        if not tokens:
            raise InvalidArgument("stage_auth_token_file", f"{self._path} is empty")
        return tokens[0]

    def _reload(self) -> None:
        assert self._path is not None
        try:
            mtime = os.stat(self._path).st_mtime_ns
            if mtime == self._mtime_ns:
                return
            token = self._read_file()
        except (OSError, InvalidArgument, UnicodeDecodeError) as exc:
            log.warning("cannot read the stage token file; keeping the token read before: %s", exc)
            return
        self._token, self._mtime_ns = token, mtime
        log.info("stage token read", extra={"fields": {"file": self._path}})


def channel_credentials(settings: GatewaySettings) -> grpc.ChannelCredentials | None:
    """TLS credentials for the stage channels, or None for plaintext (no ``--stage-tls-ca``)."""
    if not settings.stage_tls_ca:
        if settings.stage_tls_cert or settings.stage_tls_key:
            raise InvalidArgument(
                "stage_tls_ca", "stage_tls_cert/stage_tls_key need stage_tls_ca (TLS to the stages)"
            )
        return None
    if bool(settings.stage_tls_cert) != bool(settings.stage_tls_key):
        raise InvalidArgument(
            "stage_tls_key", "stage_tls_cert and stage_tls_key go together (a client certificate)"
        )
    return grpc.ssl_channel_credentials(
        root_certificates=_read(settings.stage_tls_ca, "stage_tls_ca"),
        private_key=_read(settings.stage_tls_key, "stage_tls_key") if settings.stage_tls_key else None,
        certificate_chain=_read(settings.stage_tls_cert, "stage_tls_cert")
        if settings.stage_tls_cert
        else None,
    )


def stage_channel_factory(
    settings: GatewaySettings, options: Sequence[tuple[str, Any]], token: StageToken | None = None
) -> Callable[[str], grpc.aio.Channel]:
    """Makes one replica's channel: TLS if configured, the token on every call if set.

    Built once at start-up, so a missing certificate file stops the gateway
    there, not at the first session.
    """
    credentials = channel_credentials(settings)
    token = token or StageToken(settings)
    interceptors = [_BearerToken(token)] if token.configured else None
    all_options = list(options)
    if credentials is not None and settings.stage_tls_server_name:
        # Replicas are dialled by IP (dns:/// targets resolve to ipv4:ip:port),
        # so the name their certificate carries is given here.
        all_options.append(("grpc.ssl_target_name_override", settings.stage_tls_server_name))

    def make(target: str) -> grpc.aio.Channel:
        if credentials is None:
            return grpc.aio.insecure_channel(target, options=all_options, interceptors=interceptors)
        return grpc.aio.secure_channel(target, credentials, options=all_options, interceptors=interceptors)

    return make
