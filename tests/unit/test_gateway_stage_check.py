"""What a new session is refused with while a stage is unusable (voxmesh.gateway.stage_check)."""

from __future__ import annotations

from voxmesh.gateway.settings import GatewaySettings
from voxmesh.gateway.stage_check import StageChecks, StageState
from voxmesh.gateway.stage_credentials import StageToken
from voxmesh.gateway.stage_diagnosis import USABLE, Finding, StageDiagnosis, Verdict


def checks_with(*states: StageState) -> StageChecks:
    settings = GatewaySettings()
    checks = StageChecks([], StageDiagnosis.of(settings, StageToken(settings)), timeout_s=1.0)
    checks.states = {state.stage: state for state in states}
    return checks


def test_the_gateways_own_fault_is_named_before_a_stage_that_is_down() -> None:
    checks = checks_with(
        StageState("vad", Finding(Verdict.DOWN, "connection refused"), "127.0.0.1:1"),
        StageState("voxtral", Finding(Verdict.MISCONFIGURED, "wrong token"), "127.0.0.1:2"),
        StageState("orpheus", Finding(Verdict.MISCONFIGURED, "wrong token"), "127.0.0.1:3"),
    )
    refusal = checks.refusal()
    assert refusal is not None and refusal.status == "FAILED_PRECONDITION" and not refusal.retryable
    assert str(refusal) == "the gateway cannot use stage voxtral at 127.0.0.1:2 (and orpheus): wrong token"
    assert not checks.usable


def test_a_stage_down_is_unavailable_and_retryable() -> None:
    checks = checks_with(
        StageState("vad", USABLE, "127.0.0.1:1"),
        StageState("orpheus", Finding(Verdict.DOWN, "connection refused"), "127.0.0.1:3"),
    )
    refusal = checks.refusal()
    assert refusal is not None and refusal.status == "UNAVAILABLE" and refusal.retryable
    assert str(refusal).startswith("orpheus at 127.0.0.1:3 is unavailable: connection refused")


def test_every_stage_usable_admits() -> None:
    checks = checks_with(*(StageState(name, USABLE, "x:1") for name in ("vad", "voxtral", "orpheus")))
    assert checks.refusal() is None and checks.usable
