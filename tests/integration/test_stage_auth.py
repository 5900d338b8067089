"""Every hop authenticated: the gateway presents a token (and a client certificate) to
the stages, and a direct caller without them is refused. Real processes, null engines.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from voxmesh.client import AsyncSession, TurnComplete
from voxmesh.processes import ServiceProcess, free_port
from voxmesh.v1 import (
    orpheus_pb2,
    orpheus_pb2_grpc,
    vad_pb2,
    vad_pb2_grpc,
    voxtral_pb2,
    voxtral_pb2_grpc,
)

STAGE_TOKEN = "stage-s3cret"


async def typed_turn(address: str) -> TurnComplete:
    async with await AsyncSession.connect(address) as session:
        await session.send_text("hello")
        await session.end_input()
        async with asyncio.timeout(30):
            async for event in session.events():
                if isinstance(event, TurnComplete):
                    return event
    raise AssertionError("the stream ended without a TurnComplete")


def stages(*args: str) -> list[ServiceProcess]:
    return [
        ServiceProcess("vad", free_port(), ["--metrics-port=-1", *args]),
        ServiceProcess("voxtral", free_port(), ["--engine=null", "--metrics-port=-1", *args]),
        ServiceProcess("orpheus", free_port(), ["--engine=null", "--metrics-port=-1", *args]),
    ]


def gateway_over(processes: list[ServiceProcess], *args: str) -> ServiceProcess:
    addresses = [f"--{svc.name}-addr={svc.address}" for svc in processes]
    return ServiceProcess("gateway", free_port(), [*addresses, "--metrics-port=-1", *args])


@pytest.fixture(scope="module")
def token_mesh() -> Iterator[list[ServiceProcess]]:
    """Stages that require ``STAGE_TOKEN``; a gateway that presents it (from the environment)."""
    processes = stages("--auth-token", STAGE_TOKEN)
    try:
        for svc in processes:
            svc.start()
        for svc in processes:
            svc.wait_serving(120)
        gateway = gateway_over(processes)
        gateway.env["VOXMESH_GATEWAY_STAGE_AUTH_TOKEN"] = STAGE_TOKEN
        processes.append(gateway)
        gateway.start().wait_serving(120)
        yield processes
    finally:
        for svc in reversed(processes):
            svc.stop()


async def test_gateway_presents_the_stage_token(token_mesh: list[ServiceProcess]) -> None:
    """Before the gateway had --stage-auth-token, every session failed UNAUTHENTICATED here."""
    done = await typed_turn(token_mesh[-1].address)
    assert done.reply_text


async def first_status(call: grpc.aio.StreamStreamCall) -> grpc.StatusCode:
    try:
        async for _ in call:
            pass
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def direct_calls(channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...]) -> dict[str, object]:
    """What an intruder who reached each stage would send: its own config."""
    return {
        "vad": vad_pb2_grpc.VoiceActivityStub(channel).Detect(
            iter([vad_pb2.DetectRequest(config=vad_pb2.DetectConfig(session_id="x", sample_rate_hz=16000))]),
            metadata=metadata,
            timeout=10,
        ),
        "voxtral": voxtral_pb2_grpc.VoxtralStub(channel).Respond(
            iter(
                [
                    voxtral_pb2.RespondRequest(
                        config=voxtral_pb2.RespondConfig(session_id="x", system_prompt="obey me")
                    )
                ]
            ),
            metadata=metadata,
            timeout=10,
        ),
        "orpheus": orpheus_pb2_grpc.OrpheusStub(channel).Synthesize(
            iter([orpheus_pb2.SynthesizeRequest(config=orpheus_pb2.SynthesizeConfig(session_id="x"))]),
            metadata=metadata,
            timeout=10,
        ),
    }


@pytest.mark.parametrize("metadata", [(), (("authorization", "Bearer wrong"),)], ids=["none", "wrong"])
async def test_direct_call_to_each_stage_without_the_token_is_refused(
    token_mesh: list[ServiceProcess], metadata: tuple[tuple[str, str], ...]
) -> None:
    for svc in token_mesh[:3]:
        async with grpc.aio.insecure_channel(svc.address) as channel:
            call = direct_calls(channel, metadata)[svc.name]
            assert await first_status(call) == grpc.StatusCode.UNAUTHENTICATED, svc.name  # type: ignore[arg-type]


async def list_services(address: str, metadata: tuple[tuple[str, str], ...]) -> list[str]:
    async with grpc.aio.insecure_channel(address) as channel:
        call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), metadata=metadata, timeout=10
        )
        names: list[str] = []
        async for reply in call:
            names += [s.name for s in reply.list_services_response.service]
        return names


async def test_reflection_needs_the_token_and_health_does_not(token_mesh: list[ServiceProcess]) -> None:
    voxtral = token_mesh[1]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await list_services(voxtral.address, ())
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    names = await list_services(voxtral.address, (("authorization", f"Bearer {STAGE_TOKEN}"),))
    assert "voxmesh.v1.Voxtral" in names
    async with grpc.aio.insecure_channel(voxtral.address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


# --- mutual TLS -------------------------------------------------------------------------------


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # signed by another CA
    rogue_key: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.pem", folder / f"{name}-key.pem"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", f"/CN={name}")  # fmt: skip
    return cert, key


def _issue(folder: Path, ca: tuple[Path, Path], name: str, san: str) -> tuple[Path, Path]:
    cert, key, csr, ext = (folder / f"{name}.pem", folder / f"{name}-key.pem", folder / f"{name}.csr",
                           folder / f"{name}.ext")  # fmt: skip
    ext.write_text(f"subjectAltName={san}\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")  # fmt: skip
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
             "-out", str(cert), "-days", "1", "-extfile", str(ext))  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A mesh CA, a stage certificate (localhost, 127.0.0.1), a gateway client certificate,
    and a client certificate from a CA the stages do not trust.
    """
    folder = tmp_path_factory.mktemp("pki")
    ca = _make_ca(folder, "mesh-ca")
    server = _issue(folder, ca, "stage", "DNS:localhost,IP:127.0.0.1")
    client = _issue(folder, ca, "gateway", "DNS:gateway")
    rogue = _issue(folder, _make_ca(folder, "rogue-ca"), "rogue", "DNS:rogue")
    return Pki(ca[0], *server, *client, *rogue)


def health_over_tls(address: str, credentials: grpc.ChannelCredentials) -> str:
    try:
        with grpc.secure_channel(address, credentials) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
    except grpc.RpcError as exc:
        return exc.code().name  # type: ignore[attr-defined, no-any-return]


@pytest.fixture(scope="module")
def mtls_mesh(pki: Pki) -> Iterator[list[ServiceProcess]]:
    """Stages that require a client certificate from the mesh CA; the gateway presents one."""
    processes = stages(f"--tls-cert={pki.server_cert}", f"--tls-key={pki.server_key}", f"--tls-ca={pki.ca}")
    ok = grpc.ssl_channel_credentials(
        pki.ca.read_bytes(), pki.client_key.read_bytes(), pki.client_cert.read_bytes()
    )
    try:
        for svc in processes:
            svc.start()
        deadline = time.monotonic() + 120
        for svc in processes:
            while health_over_tls(svc.address, ok) != "SERVING":
                if reason := svc.exit_reason():
                    raise RuntimeError(f"{svc.name} {reason}:\n{svc.log_tail()}")
                assert time.monotonic() < deadline, svc.log_tail()
                time.sleep(0.2)
        gateway = gateway_over(
            processes,
            f"--stage-tls-ca={pki.ca}",
            f"--stage-tls-cert={pki.client_cert}",
            f"--stage-tls-key={pki.client_key}",
        )
        processes.append(gateway)
        gateway.start().wait_serving(120)
        yield processes
    finally:
        for svc in reversed(processes):
            svc.stop()


async def test_gateway_reaches_mtls_stages_with_its_certificate(mtls_mesh: list[ServiceProcess]) -> None:
    done = await typed_turn(mtls_mesh[-1].address)
    assert done.reply_text


def test_stage_refuses_a_caller_without_a_trusted_client_certificate(
    mtls_mesh: list[ServiceProcess], pki: Pki
) -> None:
    ca = pki.ca.read_bytes()
    no_cert = grpc.ssl_channel_credentials(ca)
    rogue = grpc.ssl_channel_credentials(ca, pki.rogue_key.read_bytes(), pki.rogue_cert.read_bytes())
    for svc in mtls_mesh[:3]:
        assert health_over_tls(svc.address, no_cert) == "UNAVAILABLE", svc.name
        assert health_over_tls(svc.address, rogue) == "UNAVAILABLE", svc.name
        assert svc.exit_reason() is None


def test_tls_ca_without_a_server_certificate_stops_at_start_up() -> None:
    svc = ServiceProcess("vad", free_port(), ["--metrics-port=-1", "--tls-ca=/nonexistent.pem"]).start()
    try:
        assert svc.process is not None
        svc.process.wait(60)
        assert svc.returncode not in (None, 0)
        assert "tls_ca" in svc.log_tail()
    finally:
        svc.stop()


def test_health_command_speaks_mutual_tls(mtls_mesh: list[ServiceProcess], pki: Pki) -> None:
    """What the chart's probes run when the stages require client certificates."""
    base = [sys.executable, "-m", "voxmesh.cli", "health", mtls_mesh[0].address, f"--tls-ca={pki.ca}"]
    with_cert = [
        *base,
        f"--tls-cert={pki.client_cert}",
        f"--tls-key={pki.client_key}",
        "--tls-server-name=localhost",
    ]
    ok = subprocess.run(with_cert, capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "SERVING" in ok.stdout
    refused = subprocess.run(base, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 1
