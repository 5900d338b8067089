"""Whether the gateway can use every stage, checked rather than hoped for.

A stage is usable when one of its replicas answers a health Check SERVING
and accepts a call that the stages guard with their token, both over the
very channel sessions use (its TLS, its target name, its token). Health
alone proves too little: the stages leave it open (Kubernetes probes send
no token, voxmesh.grpc_errors), so a gateway with a wrong token would pass.
The guarded call is reflection's list of services: every stage serves it,
it has no side effect (a stage stream would take a session slot), and the
list shows whether the address is the right kind of stage at all.

Checked at start-up (before the port reports SERVING), whenever a replica's
connection changes state (a stage link reconnecting after the stage
restarted, or dropping), when a session's stream to a replica was refused,
and every :data:`RECHECK_S` (:data:`RECHECK_FAILING_S` while a stage is
unusable, so a stage that comes back, or a rotated token file, is noticed
within about a second). While a stage is unusable the gateway reports
NOT_SERVING and refuses new sessions before SessionStarted:
FAILED_PRECONDITION naming the stage when the gateway's own credentials are
wrong (not retryable), else UNAVAILABLE (retryable). Each change is logged
once, in one line naming the stage and the cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from voxmesh import logs
from voxmesh.errors import VoxmeshError
from voxmesh.gateway.placement import Replica, StagePool
from voxmesh.gateway.stage_diagnosis import USABLE, Finding, StageDiagnosis, Verdict
from voxmesh.gateway.stage_link import StageMisconfigured, StageUnreachable
from voxmesh.v1 import common_pb2, orpheus_pb2, vad_pb2, voxtral_pb2

log = logging.getLogger(__name__)

#: Every stage usable: looked at again this often even if nothing woke the check.
RECHECK_S = 10.0
#: A stage unusable: looked at again this often (how soon recovery is noticed).
RECHECK_FAILING_S = 1.0
#: A connection flapping between states wakes the check at most this often.
_MIN_GAP_S = 0.5

#: The service each stage registers (its health status is asked for by this name).
SERVICE_OF = {
    common_pb2.STAGE_VAD: vad_pb2.DESCRIPTOR.services_by_name["VoiceActivity"].full_name,
    common_pb2.STAGE_VOXTRAL: voxtral_pb2.DESCRIPTOR.services_by_name["Voxtral"].full_name,
    common_pb2.STAGE_ORPHEUS: orpheus_pb2.DESCRIPTOR.services_by_name["Orpheus"].full_name,
}


@dataclass(frozen=True)
class StageState:
    stage: str
    finding: Finding
    #: The replica the finding is about (the stage's target when it has none).
    where: str = ""

    @property
    def usable(self) -> bool:
        return self.finding.verdict is Verdict.USABLE


class StageChecks:
    """The stages' usability, kept current; the gateway's readiness and its admission policy."""

    def __init__(self, pools: Sequence[StagePool], diagnosis: StageDiagnosis, timeout_s: float) -> None:
        self._pools = pools
        self._diagnosis = diagnosis
        self._timeout_s = timeout_s
        self.states: dict[str, StageState] = {}
        self._report: Callable[[bool], Awaitable[None]] | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        for pool in pools:
            pool.on_trouble = self._wake.set

    @property
    def usable(self) -> bool:
        return all(state.usable for state in self.states.values())

    async def start(self) -> None:
        """The first check of every stage (awaited: the port reports its result), then the watch."""
        await self._check_all()
        self._task = asyncio.create_task(self._run(), name="stage-checks")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def readiness(self, report: Callable[[bool], Awaitable[None]]) -> None:
        """``ServiceSpec.readiness``: report now, and on every change."""
        self._report = report
        await report(self.usable)

    def refusal(self) -> VoxmeshError | None:
        """What a new session is refused with now, or None to admit it.

        The gateway's own misconfiguration first: it is what an operator must fix,
        and no retry helps while it lasts.
        """
        for verdict, error in ((Verdict.MISCONFIGURED, StageMisconfigured), (Verdict.DOWN, StageUnreachable)):
            failing = [s for s in self.states.values() if s.finding.verdict is verdict]
            if failing:
                first, others = failing[0], [s.stage for s in failing[1:]]
                also = f" (and {', '.join(others)})" if others else ""
                return error(f"{first.stage} at {first.where}{also}", first.finding.cause)
        return None

    # ------------------------------------------------------------ checking

    async def _run(self) -> None:
        while True:
            await self._changed(RECHECK_S if self.usable else RECHECK_FAILING_S)
            await asyncio.sleep(_MIN_GAP_S)
            try:
                await self._check_all()
            except Exception:
                # A bug here must not freeze the verdict: the next round decides afresh.
                log.exception("stage check failed; checking again")

    async def _changed(self, timeout_s: float) -> None:
        """Wait for a nudge, a replica connection changing state, or ``timeout_s``."""
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._wake.wait())]
        for pool in self._pools:
            for replica in pool.replicas:
                state = replica.channel.get_state()
                waits.append(asyncio.ensure_future(replica.channel.wait_for_state_change(state)))
        _, pending = await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _check_all(self) -> None:
        self._wake.clear()
        was_usable = self.usable if self.states else None
        states = await asyncio.gather(*(self._check_stage(pool) for pool in self._pools))
        for state in states:
            self._log_change(self.states.get(state.stage), state)
            self.states[state.stage] = state
        if self.usable != was_usable:
            if was_usable is None and self.usable:
                log.info("every stage reachable with the gateway's credentials")
            if self._report is not None:
                await self._report(self.usable)

    async def _check_stage(self, pool: StagePool) -> StageState:
        replicas = pool.replicas
        if not replicas:
            return StageState(pool.name, Finding(Verdict.DOWN, "no replica (nothing in DNS)"), pool.target)
        findings = await asyncio.gather(*(self._check_replica(pool, r) for r in replicas))
        if any(f.verdict is Verdict.USABLE for f in findings):
            return StageState(pool.name, USABLE, pool.target)
        # The gateway's own fault is named first: a stage also down elsewhere hides nothing.
        ranked = sorted(
            zip(findings, replicas, strict=True), key=lambda fr: fr[0].verdict is not Verdict.MISCONFIGURED
        )
        finding, replica = ranked[0]
        return StageState(pool.name, finding, replica.target)

    async def _check_replica(self, pool: StagePool, replica: Replica) -> Finding:
        service = SERVICE_OF[pool.stage]  # type: ignore[index]
        try:
            reply = await health_pb2_grpc.HealthStub(replica.channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=self._timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.NOT_FOUND:
                return Finding(
                    Verdict.MISCONFIGURED,
                    f"it serves no {service} (does --{pool.name}-addr point at another service?)",
                )
            if exc.code() is not grpc.StatusCode.UNIMPLEMENTED:  # a server without health: ask on
                return await self._diagnosis.explain(exc, replica.target, self._timeout_s)
        else:
            if reply.status != health_pb2.HealthCheckResponse.SERVING:
                return Finding(Verdict.DOWN, "not serving yet (loading its model) or draining")
        try:
            call = reflection_pb2_grpc.ServerReflectionStub(replica.channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=self._timeout_s
            )
            async for _ in call:
                pass
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.UNIMPLEMENTED:
                return USABLE  # not a voxmesh stage (no reflection): its token is proven by its first stream
            return await self._diagnosis.explain(exc, replica.target, self._timeout_s)
        return USABLE

    @staticmethod
    def _log_change(before: StageState | None, now: StageState) -> None:
        if before is not None and before.finding == now.finding:
            return
        if now.usable:
            if before is not None:
                log.info("stage %s usable again", now.stage, extra=logs.fields(stage=now.stage))
            return
        log.warning(
            "cannot use stage %s at %s: %s", now.stage, now.where, now.finding.cause,
            extra=logs.fields(stage=now.stage, replica=now.where, verdict=now.finding.verdict.value,
                              cause=now.finding.cause),
        )  # fmt: skip
