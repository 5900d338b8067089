"""The ``voxmesh.v1.Orpheus`` servicer: config checks, then a :class:`SynthesisSession`.

Thin on purpose: protobuf in, domain errors raised (the interceptor maps
them to statuses), the engine's work behind the session. It never learns
which engine it talks to.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc

from voxmesh import logs
from voxmesh.audio import DEFAULT_OUTPUT_SAMPLE_RATE_HZ, check_sample_rate
from voxmesh.errors import InvalidArgument
from voxmesh.idle_drain import close_when_idle
from voxmesh.language import check_language
from voxmesh.server import SessionSlots
from voxmesh.services.orpheus.engine import SpeechEngine
from voxmesh.services.orpheus.session import SynthesisSession
from voxmesh.services.orpheus.settings import OrpheusSettings
from voxmesh.services.orpheus.voices import LANGUAGES, resolve_voice
from voxmesh.v1 import common_pb2, orpheus_pb2, orpheus_pb2_grpc

log = logging.getLogger(__name__)


class OrpheusServicer(orpheus_pb2_grpc.OrpheusServicer):
    def __init__(self, engine: SpeechEngine, settings: OrpheusSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.slots = SessionSlots.for_service("orpheus", settings.max_sessions)

    async def Synthesize(
        self,
        request_iterator: AsyncIterator[orpheus_pb2.SynthesizeRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[orpheus_pb2.SynthesizeResponse]:
        with self.slots.hold():
            first = await anext(aiter(request_iterator), None)
            if first is None:
                return
            if first.WhichOneof("request") != "config":
                raise InvalidArgument("config", "the first message must be a SynthesizeConfig")
            config = first.config
            logs.session_id_var.set(config.session_id)
            voice = resolve_voice(config.voice, self.settings.voice)
            rate = check_sample_rate(
                config.sample_rate_hz, "config.sample_rate_hz", DEFAULT_OUTPUT_SAMPLE_RATE_HZ
            )
            check_language(config.language, LANGUAGES, f"orpheus (engine {self.engine.info.engine})")
            info = self.engine.info
            log.info(
                "session started", extra=logs.fields(voice=voice, sample_rate_hz=rate, engine=info.engine)
            )
            yield orpheus_pb2.SynthesizeResponse(
                engine=common_pb2.EngineInfo(
                    engine=info.engine,
                    model=info.model,
                    is_fallback=info.is_fallback,
                    # Load, for the gateway's placement of its next sessions.
                    sessions_in_use=self.slots.active,
                    max_sessions=self.slots.limit,
                )
            )
            session = SynthesisSession(self.engine, voice, rate, self.settings)
            # Once this replica drains, a session between turns moves at once (voxmesh.idle_drain).
            responses = close_when_idle(session.run(request_iterator), self.slots.drained, session.idle)
            async for response in responses:
                yield response
            log.info("session ended")
