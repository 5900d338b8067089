"""``voxmesh serve gateway``: a pool of replicas per stage, shared by every session.

Each stage address is any gRPC target (see :mod:`voxmesh.gateway.placement`);
the gateway keeps one channel per replica and places each session's stream
on the replica with the most room.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import grpc

from voxmesh.gateway.placement import StagePool
from voxmesh.gateway.servicer import ConversationServicer
from voxmesh.gateway.session import Upstreams
from voxmesh.gateway.settings import GatewaySettings
from voxmesh.gateway.stage_check import StageChecks
from voxmesh.gateway.stage_credentials import StageToken, stage_channel_factory
from voxmesh.gateway.stage_diagnosis import StageDiagnosis
from voxmesh.server import ServiceSpec
from voxmesh.v1 import (
    common_pb2,
    conversation_pb2,
    conversation_pb2_grpc,
    orpheus_pb2_grpc,
    vad_pb2_grpc,
    voxtral_pb2_grpc,
)

# A restarted stage is found again within ~2 s; keepalives notice a dead peer
# that never closed its socket.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
]


def build_spec(settings: GatewaySettings) -> ServiceSpec:
    # TLS and the stage token, as configured (voxmesh.gateway.stage_credentials).
    token = StageToken(settings)
    channel = stage_channel_factory(settings, CHANNEL_OPTIONS, token)

    def pool(stage: int, target: str, method_of: Callable[[grpc.aio.Channel], Any]) -> StagePool:
        return StagePool(stage, target, channel, method_of, settings.stage_resolve_interval_s)

    upstreams = Upstreams(
        detect=pool(
            common_pb2.STAGE_VAD, settings.vad_addr, lambda c: vad_pb2_grpc.VoiceActivityStub(c).Detect
        ),
        respond=pool(
            common_pb2.STAGE_VOXTRAL, settings.voxtral_addr, lambda c: voxtral_pb2_grpc.VoxtralStub(c).Respond
        ),
        synthesize=pool(
            common_pb2.STAGE_ORPHEUS,
            settings.orpheus_addr,
            lambda c: orpheus_pb2_grpc.OrpheusStub(c).Synthesize,
        ),
    )
    pools = (upstreams.detect, upstreams.respond, upstreams.synthesize)
    # Every stage reachable with the gateway's credentials, or NOT_SERVING and new
    # sessions refused saying which stage and why (voxmesh.gateway.stage_check).
    checks = StageChecks(pools, StageDiagnosis.of(settings, token), settings.connect_timeout_s)
    servicer = ConversationServicer(settings, upstreams, checks)

    async def startup() -> None:
        await asyncio.gather(*(p.start() for p in pools))
        await checks.start()

    async def drain() -> None:
        servicer.drain()
        deadline = time.monotonic() + settings.grace_s
        while servicer.sessions and time.monotonic() < deadline:  # noqa: ASYNC110 - sessions end on their own
            await asyncio.sleep(0.05)

    async def shutdown() -> None:
        await checks.close()
        await asyncio.gather(*(p.close() for p in pools))

    return ServiceSpec(
        name="gateway",
        service_names=[conversation_pb2.DESCRIPTOR.services_by_name["Conversation"].full_name],
        register=lambda server: conversation_pb2_grpc.add_ConversationServicer_to_server(servicer, server),
        startup=startup,
        drain=drain,
        slots=servicer.slots,
        shutdown=shutdown,
        readiness=checks.readiness,
    )
