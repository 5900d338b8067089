"""The SDK against a gateway that stops answering, and against one that wants client
certificates. Real processes (null engines behind the gateway).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import grpc
import pytest

from tests.integration.null_mesh import start_null_mesh
from tests.integration.test_stage_auth import Pki, health_over_tls, pki  # noqa: F401 - pki is a fixture
from voxmesh.client import AsyncSession, Session, TurnComplete, Unavailable
from voxmesh.processes import ServiceProcess


@pytest.fixture(scope="module")
def frozen_gateway() -> Iterator[ServiceProcess]:
    """A gateway that served, then was SIGSTOPped: it accepts TCP and answers nothing."""
    processes = start_null_mesh()
    gateway = processes[-1]
    assert gateway.process is not None
    os.kill(gateway.process.pid, signal.SIGSTOP)
    try:
        yield gateway
    finally:
        os.kill(gateway.process.pid, signal.SIGCONT)
        for svc in reversed(processes):
            svc.stop()


async def test_async_connect_to_a_frozen_gateway_is_unavailable(frozen_gateway: ServiceProcess) -> None:
    """Before connect_timeout_s, connect() was still waiting after 25 s."""
    async with asyncio.timeout(30):
        with pytest.raises(Unavailable) as caught:
            await AsyncSession.connect(frozen_gateway.address, connect_timeout_s=2)
    assert "connect_timeout_s" in str(caught.value)


def test_blocking_connect_to_a_frozen_gateway_is_unavailable(frozen_gateway: ServiceProcess) -> None:
    started = time.monotonic()
    with pytest.raises(Unavailable):
        Session.connect(frozen_gateway.address, connect_timeout_s=2)
    assert time.monotonic() - started < 30, "connect waited far past its deadline"


# --- client certificates -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def mtls_gateway(pki: Pki) -> Iterator[ServiceProcess]:  # noqa: F811 - the imported fixture
    """A gateway that requires client certificates from the mesh CA."""
    processes = start_null_mesh(
        f"--tls-cert={pki.server_cert}", f"--tls-key={pki.server_key}", f"--tls-ca={pki.ca}", serving=False
    )
    gateway = processes[-1]
    try:
        ok = grpc.ssl_channel_credentials(
            pki.ca.read_bytes(), pki.client_key.read_bytes(), pki.client_cert.read_bytes()
        )
        deadline = time.monotonic() + 120
        while health_over_tls(gateway.address, ok) != "SERVING":
            assert gateway.exit_reason() is None, gateway.log_tail()
            assert time.monotonic() < deadline, gateway.log_tail()
            time.sleep(0.2)
        yield gateway
    finally:
        for svc in reversed(processes):
            svc.stop()


async def test_sdk_presents_a_client_certificate(mtls_gateway: ServiceProcess, pki: Pki) -> None:  # noqa: F811
    ca = pki.ca.read_bytes()
    async with await AsyncSession.connect(
        mtls_gateway.address,
        tls=True,
        root_certificates=ca,
        client_cert=pki.client_cert.read_bytes(),
        client_key=pki.client_key.read_bytes(),
    ) as session:
        await session.send_text("hello")
        async with asyncio.timeout(30):
            async for event in session.events():
                if isinstance(event, TurnComplete):
                    assert event.reply_text
                    break
    with pytest.raises(Unavailable):
        await AsyncSession.connect(mtls_gateway.address, tls=True, root_certificates=ca, connect_timeout_s=5)
