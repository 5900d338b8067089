"""Bearer-token auth and TLS on the gateway, as real processes (null engines behind it)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from voxmesh.client import (
    AsyncSession,
    Overloaded,
    TurnComplete,
    Unauthenticated,
    Unavailable,
    VoxmeshClientError,
)
from voxmesh.processes import ServiceProcess, free_port
from voxmesh.v1 import conversation_pb2_grpc


async def typed_turn(address: str, **connect: object) -> TurnComplete:
    """One typed turn; the TurnComplete (raises the SDK's typed error on failure)."""
    async with await AsyncSession.connect(address, **connect) as session:  # type: ignore[arg-type]
        await session.send_text("hello")
        await session.end_input()
        async with asyncio.timeout(30):
            async for event in session.events():
                if isinstance(event, TurnComplete):
                    return event
    raise AssertionError("the stream ended without a TurnComplete")


def start_stages() -> list[ServiceProcess]:
    """Vad (webrtcvad), voxtral and orpheus (null engines), plaintext on loopback."""
    stages = [
        ServiceProcess("vad", free_port(), ["--metrics-port=-1"]),
        ServiceProcess("voxtral", free_port(), ["--engine=null", "--metrics-port=-1"]),
        ServiceProcess("orpheus", free_port(), ["--engine=null", "--metrics-port=-1"]),
    ]
    for svc in stages:
        svc.start()
    for svc in stages:
        svc.wait_serving(120)
    return stages


def gateway_over(stages: list[ServiceProcess], *args: str) -> ServiceProcess:
    addresses = [f"--{svc.name}-addr={svc.address}" for svc in stages]
    return ServiceProcess("gateway", free_port(), [*addresses, "--metrics-port=-1", *args])


@pytest.fixture(scope="module")
def auth_gateway() -> Iterator[ServiceProcess]:
    """A gateway with ``--auth-token s3cret``; the stages behind it have no token."""
    processes = start_stages()
    try:
        gateway = gateway_over(processes, "--auth-token", "s3cret")
        processes.append(gateway)
        gateway.start().wait_serving(120)
        yield gateway
    finally:
        for svc in reversed(processes):
            svc.stop()


async def converse_status(address: str, metadata: tuple[tuple[str, str], ...]) -> tuple[grpc.StatusCode, str]:
    """A Converse call that sends no message (so no write can race the refusal): its status."""
    async with grpc.aio.insecure_channel(address) as channel:
        call = conversation_pb2_grpc.ConversationStub(channel).Converse(
            iter([]), metadata=metadata, timeout=10
        )
        try:
            async for _ in call:
                pass
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("authorization", "Bearer wrong"),),
        (("authorization", "Bearer s3cre"),),  # a prefix of the right one
        (("authorization", "Bearer s3cret2"),),  # the right one and more
        (("authorization", "s3cret"),),  # no scheme
        (("authorization", "Basic s3cret"),),
        (("x-auth-token", "s3cret"),),  # the right token under another key
    ],
    ids=["none", "wrong", "prefix", "longer", "no-scheme", "basic", "other-key"],
)
async def test_missing_or_wrong_token_is_unauthenticated(
    auth_gateway: ServiceProcess, metadata: tuple[tuple[str, str], ...]
) -> None:
    code, details = await converse_status(auth_gateway.address, metadata)
    assert code == grpc.StatusCode.UNAUTHENTICATED, (code, details)
    assert "authorization" in details


async def test_sdk_session_with_no_or_wrong_token_raises_unauthenticated(
    auth_gateway: ServiceProcess,
) -> None:
    """Through the SDK, as a user writes it: send a turn, then read. Every try must
    raise Unauthenticated; a generic INTERNAL ("Internal error from Core", grpc's
    client losing the status when the server ends the call while the client still
    writes) tells the user nothing about the token.
    """
    outcomes: list[str] = []
    for attempt in range(20):
        try:
            await typed_turn(auth_gateway.address, token=None if attempt % 2 else "wrong")
            outcomes.append("OK")
        except VoxmeshClientError as exc:
            outcomes.append(f"{type(exc).__name__}: {exc}")
    wrong = [o for o in outcomes if not o.startswith("Unauthenticated")]
    assert not wrong, (
        f"{len(wrong)} of {len(outcomes)} refused sessions were not Unauthenticated: {wrong[:3]}"
    )


async def test_right_token_completes_a_typed_turn(auth_gateway: ServiceProcess) -> None:
    done = await typed_turn(auth_gateway.address, token="s3cret")
    assert done.reply_text
    assert auth_gateway.exit_reason() is None


async def test_health_needs_no_token(auth_gateway: ServiceProcess) -> None:
    """Probes (Kubernetes gRPC probes send no metadata) must still see SERVING."""
    async with grpc.aio.insecure_channel(auth_gateway.address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


# --- TLS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 (openssl; ``cryptography`` is not installed)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def wait_serving_tls(svc: ServiceProcess, root_certificates: bytes, timeout_s: float = 60.0) -> None:
    """ServiceProcess.wait_serving speaks plaintext; a TLS port needs a TLS health check."""
    credentials = grpc.ssl_channel_credentials(root_certificates)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if reason := svc.exit_reason():
            raise RuntimeError(f"{svc.name} {reason} before serving:\n{svc.log_tail()}")
        try:
            with grpc.secure_channel(svc.address, credentials) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=0.5
                )
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{svc.name} not SERVING over TLS after {timeout_s:.0f} s:\n{svc.log_tail()}")


@pytest.fixture(scope="module")
def tls_gateway(certificate: tuple[Path, Path]) -> Iterator[tuple[ServiceProcess, bytes]]:
    """Plaintext stages (loopback), a TLS gateway in front of them; yields it and its certificate."""
    cert, key = certificate
    processes = start_stages()
    try:
        gateway = gateway_over(processes, f"--tls-cert={cert}", f"--tls-key={key}")
        processes.append(gateway)
        gateway.start()
        wait_serving_tls(gateway, cert.read_bytes())
        yield gateway, cert.read_bytes()
    finally:
        for svc in reversed(processes):
            svc.stop()


async def test_tls_client_completes_a_typed_turn(tls_gateway: tuple[ServiceProcess, bytes]) -> None:
    gateway, root = tls_gateway
    done = await typed_turn(gateway.address, tls=True, root_certificates=root)
    assert done.reply_text
    # The certificate names localhost too.
    done = await typed_turn(f"localhost:{gateway.port}", tls=True, root_certificates=root)
    assert done.reply_text


async def test_plaintext_client_is_unavailable_on_a_tls_gateway(
    tls_gateway: tuple[ServiceProcess, bytes],
) -> None:
    gateway, _ = tls_gateway
    with pytest.raises(Unavailable):
        await typed_turn(gateway.address)
    assert gateway.exit_reason() is None


async def test_untrusted_certificate_is_refused(tls_gateway: tuple[ServiceProcess, bytes]) -> None:
    """A client that does not trust the self-signed certificate (system roots) gets no session."""
    gateway, _ = tls_gateway
    with pytest.raises(VoxmeshClientError) as caught:
        await typed_turn(gateway.address, tls=True)
    assert caught.value.code == "UNAVAILABLE"


@pytest.fixture
def tokens_gateway(tmp_path: Path) -> Iterator[tuple[ServiceProcess, Path]]:
    """A gateway reading its tokens from a file (two client apps), one session per app."""
    tokens = tmp_path / "tokens"
    tokens.write_text("# one token per client app\napp-a-token\n\napp-b-token\n")
    processes = start_stages()
    try:
        gateway = gateway_over(processes, f"--auth-tokens-file={tokens}", "--max-sessions-per-client=1")
        processes.append(gateway)
        gateway.start().wait_serving(120)
        yield gateway, tokens
    finally:
        for svc in reversed(processes):
            svc.stop()


async def test_tokens_file_gives_each_app_its_own_quota_and_rotates(
    tokens_gateway: tuple[ServiceProcess, Path],
) -> None:
    gateway, tokens = tokens_gateway
    async with await AsyncSession.connect(gateway.address, token="app-a-token"):
        # App a's one slot is taken: a second a session is refused, app b still gets in.
        with pytest.raises(Overloaded, match="max_sessions_per_client"):
            await AsyncSession.connect(gateway.address, token="app-a-token")
        assert (await typed_turn(gateway.address, token="app-b-token")).reply_text
    with pytest.raises(Unauthenticated):
        await typed_turn(gateway.address, token="not-in-the-file")
    # Revoking app a is an edit of the file; no restart.
    tokens.write_text("app-b-token\n")
    os.utime(tokens, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    with pytest.raises(Unauthenticated):
        await typed_turn(gateway.address, token="app-a-token")
    assert (await typed_turn(gateway.address, token="app-b-token")).reply_text
