"""Why the gateway cannot use a stage replica, in words an operator can act on.

gRPC reports every failure to connect as UNAVAILABLE; only its details say
whether the stage is down or the gateway's own ``--stage-*`` credentials are
wrong, and two cases look alike there ("Socket closed"): a plaintext gateway
dialling a TLS stage, and a TLS stage that refuses the gateway's client
certificate. Those two are told apart by one TLS handshake of our own
(:func:`_tls_handshake`). Messages measured with grpcio 1.85 (its core's
wording; anything unrecognised is reported as the stage being down, with
gRPC's own details).
"""

from __future__ import annotations

import asyncio
import enum
import ssl
from dataclasses import dataclass

import grpc

from voxmesh.gateway.settings import GatewaySettings
from voxmesh.gateway.stage_credentials import StageToken

#: HTTP/2's client preface and an empty SETTINGS frame: a gRPC server answers with its SETTINGS.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")
_PROBE_TIMEOUT_S = 3.0


class Verdict(enum.Enum):
    USABLE = "usable"
    #: Not running, not serving yet, or unreachable: it may come back by itself (UNAVAILABLE).
    DOWN = "down"
    #: The gateway's own configuration is wrong: nothing a client retries can help.
    MISCONFIGURED = "misconfigured"


@dataclass(frozen=True)
class Finding:
    verdict: Verdict
    #: What is wrong, naming the flag to fix where it is the gateway's: empty when usable.
    cause: str = ""


USABLE = Finding(Verdict.USABLE)


class _Handshake(enum.Enum):
    PLAINTEXT = "the stage answered a TLS hello with plaintext"
    #: An alert in the handshake, or (TLS 1.3, where the server checks the client's
    #: certificate after the client's Finished) a hang-up right after it: mutual TLS
    #: refusing our certificate.
    REFUSED = "refused in or right after the handshake"
    ACCEPTED = "the stage spoke HTTP/2 over TLS"
    FAILED = "no TLS handshake"


@dataclass(frozen=True)
class StageDiagnosis:
    """What the gateway presents to its stages, to explain a refusal by it."""

    tls: bool
    client_cert: str | None
    client_key: str | None
    server_name: str | None
    token: StageToken

    @classmethod
    def of(cls, settings: GatewaySettings, token: StageToken) -> StageDiagnosis:
        return cls(
            tls=bool(settings.stage_tls_ca),
            client_cert=settings.stage_tls_cert,
            client_key=settings.stage_tls_key,
            server_name=settings.stage_tls_server_name,
            token=token,
        )

    async def explain(self, exc: grpc.aio.AioRpcError, target: str, timeout_s: float) -> Finding:
        """The finding for a failed health or reflection call to the replica at ``target``."""
        code, details = exc.code(), exc.details() or ""
        if code is grpc.StatusCode.UNAUTHENTICATED:
            if not self.token.configured:
                return Finding(
                    Verdict.MISCONFIGURED,
                    "missing token: the stage requires a bearer token and the gateway sends none "
                    "(set --stage-auth-token or --stage-auth-token-file to the stages' --auth-token)",
                )
            return Finding(
                Verdict.MISCONFIGURED,
                f"wrong token: the stage refused the gateway's token ({self.token.flag})",
            )
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            return Finding(Verdict.DOWN, f"no answer within {timeout_s:g} s")
        if code is not grpc.StatusCode.UNAVAILABLE:
            return Finding(Verdict.DOWN, f"{code.name}: {details}")
        if "Connection refused" in details:
            return Finding(Verdict.DOWN, "connection refused (not running, or not listening there)")
        if "WRONG_VERSION_NUMBER" in details:
            return Finding(
                Verdict.MISCONFIGURED,
                "TLS against plaintext: the gateway dials TLS (--stage-tls-ca) and the stage speaks "
                "plaintext (it has no --tls-cert)",
            )
        if "Hostname Verification" in details:
            name = self.server_name or _host_port(target)[0]
            return Finding(
                Verdict.MISCONFIGURED,
                f"certificate name mismatch: the stage's certificate does not name {name!r} "
                "(set --stage-tls-server-name to a name it carries)",
            )
        if "CERTIFICATE_VERIFY_FAILED" in details:
            return Finding(
                Verdict.MISCONFIGURED,
                "TLS handshake failed: the stage's certificate is not signed by --stage-tls-ca",
            )
        if "Socket closed" in details or "handshake" in details.lower():
            return await self._closed_on_connect(target, details)
        return Finding(Verdict.DOWN, details)

    async def _closed_on_connect(self, target: str, details: str) -> Finding:
        host, port = _host_port(target)
        if port is None:
            return Finding(Verdict.DOWN, details)
        if not self.tls:
            if await _tls_handshake(host, port, None, None) in (_Handshake.ACCEPTED, _Handshake.REFUSED):
                return Finding(
                    Verdict.MISCONFIGURED,
                    "plaintext against TLS: the stage speaks TLS and the gateway dials plaintext "
                    "(set --stage-tls-ca, and --stage-tls-cert/--stage-tls-key if the stages require "
                    "client certificates)",
                )
            return Finding(Verdict.DOWN, details)
        if await _tls_handshake(host, port, self.client_cert, self.client_key) is _Handshake.REFUSED:
            if not self.client_cert:
                return Finding(
                    Verdict.MISCONFIGURED,
                    "TLS handshake refused: the stage requires a client certificate (mutual TLS); "
                    "set --stage-tls-cert and --stage-tls-key",
                )
            return Finding(
                Verdict.MISCONFIGURED,
                "TLS handshake refused: the stage does not accept the gateway's client certificate "
                "(--stage-tls-cert is not signed by the CA the stages trust, their --tls-ca)",
            )
        return Finding(Verdict.DOWN, details)


async def _tls_handshake(host: str, port: int, cert: str | None, key: str | None) -> _Handshake:
    """One TLS handshake with the replica, and what it did after (never verifies its certificate:
    this only asks whether it speaks TLS and whether it keeps a connection with our certificate).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    if cert and key:
        try:
            context.load_cert_chain(cert, key)
        except (ssl.SSLError, OSError):
            return _Handshake.FAILED  # what gRPC said stands: this probe cannot add to it
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context), _PROBE_TIMEOUT_S
        )
    except ssl.SSLError as exc:
        return _Handshake.PLAINTEXT if exc.reason == "WRONG_VERSION_NUMBER" else _Handshake.REFUSED
    except (OSError, TimeoutError):
        return _Handshake.FAILED
    try:
        writer.write(_H2_PREFACE)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(9), _PROBE_TIMEOUT_S)
        return _Handshake.ACCEPTED if answer else _Handshake.REFUSED
    except TimeoutError:
        return _Handshake.FAILED
    except OSError:  # a reset, or an alert read as ssl.SSLError
        return _Handshake.REFUSED
    finally:
        writer.close()


def _host_port(target: str) -> tuple[str, int | None]:
    """``127.0.0.1:50052``, ``ipv4:10.0.0.1:50053``, ``ipv6:[::1]:50053`` → host and port."""
    address = target.removeprefix("ipv4:").removeprefix("ipv6:")
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit():
        return address, None
    return host.strip("[]"), int(port)
