"""``voxmesh serve gateway``: one channel per stage, shared by every session."""

from __future__ import annotations

import asyncio
import time

from voxmesh.gateway.servicer import ConversationServicer
from voxmesh.gateway.session import Upstreams
from voxmesh.gateway.settings import GatewaySettings
from voxmesh.gateway.stage_credentials import stage_channel_factory

from voxmesh.server import ServiceSpec
from voxmesh.v1 import (
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
    channel = stage_channel_factory(settings, CHANNEL_OPTIONS)
    channels = [
        channel(addr)
        for addr in (settings.vad_addr, settings.voxtral_addr, settings.orpheus_addr)
    ]
    upstreams = Upstreams(
        detect=vad_pb2_grpc.VoiceActivityStub(channels[0]).Detect,
        respond=voxtral_pb2_grpc.VoxtralStub(channels[1]).Respond,
        synthesize=orpheus_pb2_grpc.OrpheusStub(channels[2]).Synthesize,
    )
    servicer = ConversationServicer(settings, upstreams)

    async def drain() -> None:
        servicer.drain()
        deadline = time.monotonic() + settings.grace_s
        while servicer.sessions and time.monotonic() < deadline:  # noqa: ASYNC110 - sessions end on their own
            await asyncio.sleep(0.05)

    async def shutdown() -> None:
        await asyncio.gather(*(channel.close() for channel in channels))

    return ServiceSpec(
        name="gateway",
        service_names=[conversation_pb2.DESCRIPTOR.services_by_name["Conversation"].full_name],
        register=lambda server: conversation_pb2_grpc.add_ConversationServicer_to_server(servicer, server),
        drain=drain,
        shutdown=shutdown,
    )
