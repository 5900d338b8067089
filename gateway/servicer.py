"""The client-facing Conversation service: validates the stream's opening and
hands it to a :class:`~voxmesh.gateway.session.Session`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc

from voxmesh import logs
from voxmesh.errors import InvalidArgument
from voxmesh.gateway.client_quota import ClientQuota, client_of
from voxmesh.gateway.input_limits import InputLimits, first_request, idle_limited
from voxmesh.gateway.session import Session, Upstreams
from voxmesh.gateway.session_options import session_options
from voxmesh.gateway.settings import GatewaySettings
from voxmesh.gateway.stage_check import StageChecks
from voxmesh.server import SessionSlots
from voxmesh.v1 import conversation_pb2, conversation_pb2_grpc


class ConversationServicer(conversation_pb2_grpc.ConversationServicer):
    def __init__(
        self, settings: GatewaySettings, upstreams: Upstreams, stages: StageChecks | None = None
    ) -> None:
        self._settings = settings
        self._upstreams = upstreams
        self._stages = stages
        self.slots = SessionSlots.for_service("gateway", settings.max_sessions)
        self.quota = ClientQuota(settings.max_sessions_per_client, settings.max_input_messages_per_client_s)
        self.sessions: set[Session] = set()

    async def Converse(
        self,
        request_iterator: AsyncIterator[conversation_pb2.ConverseRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[conversation_pb2.ConverseResponse]:
        # A slot is taken only once the config came (within first_message_timeout_s):
        # silent streams hold none.
        client = client_of(context)
        first = await first_request(request_iterator, self._settings.first_message_timeout_s)
        with self.slots.hold(), self.quota.hold(client):
            if first is None:
                return  # an empty stream is a valid, finished conversation
            kind = first.WhichOneof("request")
            if kind != "config":
                raise InvalidArgument(
                    "config", f"the first message must be SessionConfig, got {kind or 'nothing'}"
                )
            options = session_options(first.config, self._settings.default_voice)
            # A stage the gateway cannot use refuses the session now, saying which and why,
            # rather than after a SessionStarted with no engines in it.
            if self._stages is not None and (refusal := self._stages.refusal()) is not None:
                raise refusal
            session_id = uuid.uuid4().hex[:16]
            logs.session_id_var.set(session_id)
            # Forward the caller's trace context (and nothing else) to the stages.
            metadata = tuple(
                (k, v) for k, v in (context.invocation_metadata() or ()) if k in ("traceparent", "tracestate")
            )
            session = Session(
                session_id,
                options,
                self._upstreams,
                connect_timeout_s=self._settings.connect_timeout_s,
                stage_timeout_s=self._settings.stage_timeout_s,
                out_queue_size=self._settings.out_queue_size,
                barge_in_min_speech_ms=self._settings.barge_in_min_speech_ms,
                speculate_after_ms=self._settings.speculate_after_ms,
                hold_unfinished_ms=self._settings.hold_unfinished_ms,
                tool_result_timeout_s=self._settings.tool_result_timeout_s,
                metadata=metadata,  # type: ignore[arg-type]
                input_limits=InputLimits(
                    options.input_sample_rate_hz, self._settings.max_input_messages_per_s
                ),
            )
            self.sessions.add(session)
            try:
                requests = idle_limited(
                    self.quota.paced(client, request_iterator),
                    self._settings.session_idle_timeout_s,
                    lambda: session.replying,
                )
                async for response in session.run(requests):
                    yield response
            finally:
                self.sessions.discard(session)

    def drain(self) -> None:
        for session in list(self.sessions):
            session.drain()
