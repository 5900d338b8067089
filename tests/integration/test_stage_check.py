"""A gateway that cannot use its stages says so: NOT_SERVING, sessions refused before
SessionStarted with the stage and the cause, one log line per stage, and it recovers by
itself. Real stage processes with a real wrong token and real certificates made here.

(Before: SERVING, SessionStarted with empty engine names, then UNAUTHENTICATED errors
marked retryable and "voxtral unreachable; retrying" for ever; a TLS mismatch showed only
as every stage being down.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.integration.stage_verdicts import STAGE_NAMES, stage_warnings, wait_for_verdict, wait_until
from tests.integration.test_stage_auth import (
    STAGE_TOKEN,
    Pki,
    gateway_over,
    health_over_tls,
    pki,  # noqa: F401 - the fixture
    stages,
    typed_turn,
)
from voxmesh.client import AsyncSession, VoxmeshClientError
from voxmesh.processes import ServiceProcess, check_health, free_port


async def refusal(address: str) -> VoxmeshClientError:
    """The SDK's error for a session that never got its SessionStarted."""
    with pytest.raises(VoxmeshClientError) as refused:
        async with await AsyncSession.connect(address):
            pass
    return refused.value


# --- the token ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def token_stages() -> Iterator[list[ServiceProcess]]:
    processes = stages("--auth-token", STAGE_TOKEN)
    try:
        for svc in processes:
            svc.start()
        for svc in processes:
            svc.wait_serving(120)
        yield processes
    finally:
        for svc in reversed(processes):
            svc.stop()


async def test_wrong_token_is_named_and_a_rotated_token_file_recovers(
    token_stages: list[ServiceProcess], tmp_path: Path
) -> None:
    token_file = tmp_path / "stage-token"
    token_file.write_text("not-the-token\n")
    gateway = gateway_over(token_stages, f"--stage-auth-token-file={token_file}").start()
    try:
        lines = wait_for_verdict(gateway)
        assert check_health(gateway.address) == "NOT_SERVING"
        # Not ready, but alive: the chart's liveness probe must not restart it for this.
        assert check_health(gateway.address, service="liveness") == "SERVING"
        refused = await refusal(gateway.address)
        # FAILED_PRECONDITION, not UNAUTHENTICATED: the SDKs and the edge read that as the
        # client's own token being wrong. Not retryable: no retry helps until it is fixed.
        assert refused.code == "FAILED_PRECONDITION", refused
        assert not refused.retryable
        assert "wrong token" in refused.message, refused.message
        assert all(name in refused.message for name in STAGE_NAMES), refused.message
        assert "--stage-auth-token-file" in refused.message

        # Rotated the way a Secret is: the file changes, the gateway is not restarted.
        token_file.write_text(f"{STAGE_TOKEN}\n")
        gateway.wait_serving(60)
        done = await typed_turn(gateway.address)
        assert done.reply_text
        # One line per stage for the whole outage, however often it was checked again.
        lines = stage_warnings(gateway)
        assert sorted(str(e["stage"]) for e in lines) == sorted(STAGE_NAMES), lines
        for entry in lines:
            assert "wrong token" in str(entry["cause"]) and entry["stage"] in str(entry["msg"]), entry
    finally:
        gateway.stop()


async def test_stages_that_stop_taking_the_token_while_serving_are_noticed(tmp_path: Path) -> None:
    """The stages' tokens file rotated under a SERVING gateway (their side first)."""
    tokens = tmp_path / "stage-tokens"
    tokens.write_text(f"{STAGE_TOKEN}\n")
    processes = stages(f"--auth-tokens-file={tokens}")
    try:
        for svc in processes:
            svc.start()
        for svc in processes:
            svc.wait_serving(120)
        gateway = gateway_over(processes, f"--stage-auth-token={STAGE_TOKEN}").start()
        processes.append(gateway)
        gateway.wait_serving(60)
        assert (await typed_turn(gateway.address)).reply_text

        tokens.write_text("rotated-on-the-stages\n")
        # Whether the gateway's check or the session's own stage open sees it first,
        # the session is refused before SessionStarted, saying so.
        refused = await refusal(gateway.address)
        assert refused.code == "FAILED_PRECONDITION", refused
        assert "token" in refused.message, refused.message
        wait_for_verdict(gateway)
        assert check_health(gateway.address) == "NOT_SERVING"

        tokens.write_text(f"rotated-on-the-stages\n{STAGE_TOKEN}\n")
        gateway.wait_serving(60)
        assert (await typed_turn(gateway.address)).reply_text
    finally:
        for svc in reversed(processes):
            svc.stop()


async def test_no_token_and_an_address_of_another_stage_are_named(token_stages: list[ServiceProcess]) -> None:
    _vad, voxtral, orpheus = token_stages
    no_token = gateway_over(token_stages).start()
    # --vad-addr given voxtral's address: its health has no VoiceActivity service.
    crossed = ServiceProcess(
        "gateway",
        free_port(),
        [f"--vad-addr={voxtral.address}", f"--voxtral-addr={voxtral.address}",
         f"--orpheus-addr={orpheus.address}", f"--stage-auth-token={STAGE_TOKEN}", "--metrics-port=-1"],
    ).start()  # fmt: skip
    try:
        for entry in wait_for_verdict(no_token):
            assert "missing token" in str(entry["cause"]), entry
        assert (await refusal(no_token.address)).code == "FAILED_PRECONDITION"
        (line,) = wait_for_verdict(crossed, ["vad"])
        assert "serves no voxmesh.v1.VoiceActivity" in str(line["cause"]), line
        refused = await refusal(crossed.address)
        assert refused.code == "FAILED_PRECONDITION" and "--vad-addr" in refused.message, refused
    finally:
        no_token.stop()
        crossed.stop()


async def test_tls_against_plaintext_stages_is_named(token_stages: list[ServiceProcess], pki: Pki) -> None:  # noqa: F811
    gateway = gateway_over(
        token_stages, f"--stage-auth-token={STAGE_TOKEN}", f"--stage-tls-ca={pki.ca}"
    ).start()
    try:
        wait_for_verdict(gateway)
        refused = await refusal(gateway.address)
        assert refused.code == "FAILED_PRECONDITION"
        assert "TLS against plaintext" in refused.message, refused.message
    finally:
        gateway.stop()


# --- TLS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mtls_stages(pki: Pki) -> Iterator[list[ServiceProcess]]:  # noqa: F811
    """Stages that require a client certificate from the mesh CA (their own: localhost, 127.0.0.1)."""
    processes = stages(f"--tls-cert={pki.server_cert}", f"--tls-key={pki.server_key}", f"--tls-ca={pki.ca}")
    ok = grpc.ssl_channel_credentials(
        pki.ca.read_bytes(), pki.client_key.read_bytes(), pki.client_cert.read_bytes()
    )
    try:
        for svc in processes:
            svc.start()
        for svc in processes:
            wait_until(lambda svc=svc: health_over_tls(svc.address, ok) == "SERVING", svc, "not serving")  # type: ignore[misc]
        yield processes
    finally:
        for svc in reversed(processes):
            svc.stop()


def tls_args(certs: Pki, case: str) -> list[str]:
    client = [f"--stage-tls-cert={certs.client_cert}", f"--stage-tls-key={certs.client_key}"]
    return {
        "plaintext": [],
        "no client certificate": [f"--stage-tls-ca={certs.ca}"],
        "client certificate of another CA": [
            f"--stage-tls-ca={certs.ca}",
            f"--stage-tls-cert={certs.rogue_cert}",
            f"--stage-tls-key={certs.rogue_key}",
        ],
        "name mismatch": [f"--stage-tls-ca={certs.ca}", *client, "--stage-tls-server-name=voxmesh-stages"],
        "stage certificate of another CA": [f"--stage-tls-ca={certs.rogue_cert}", *client],
    }[case]


CAUSES = {
    "plaintext": "plaintext against TLS",
    "no client certificate": "requires a client certificate",
    "client certificate of another CA": "does not accept the gateway's client certificate",
    "name mismatch": "certificate name mismatch: the stage's certificate does not name 'voxmesh-stages'",
    "stage certificate of another CA": "not signed by --stage-tls-ca",
}


@pytest.mark.parametrize("case", list(CAUSES))
async def test_a_tls_mismatch_is_named_not_reported_as_stages_down(
    mtls_stages: list[ServiceProcess],
    pki: Pki,  # noqa: F811
    case: str,
) -> None:
    gateway = gateway_over(mtls_stages, *tls_args(pki, case)).start()
    try:
        lines = wait_for_verdict(gateway)
        assert check_health(gateway.address) == "NOT_SERVING"
        for entry in lines:
            assert CAUSES[case] in str(entry["cause"]), entry
        assert len(lines) == len(STAGE_NAMES), lines
        refused = await refusal(gateway.address)
        assert refused.code == "FAILED_PRECONDITION", refused
        assert not refused.retryable
        assert CAUSES[case] in refused.message, refused.message
    finally:
        gateway.stop()


async def test_the_right_certificates_serve(mtls_stages: list[ServiceProcess], pki: Pki) -> None:  # noqa: F811
    """The control for the cases above: the same stages, the gateway's right credentials."""
    gateway = gateway_over(
        mtls_stages,
        f"--stage-tls-ca={pki.ca}",
        f"--stage-tls-cert={pki.client_cert}",
        f"--stage-tls-key={pki.client_key}",
    ).start()
    try:
        gateway.wait_serving(60)
        assert (await typed_turn(gateway.address)).reply_text
        assert stage_warnings(gateway) == []
    finally:
        gateway.stop()
