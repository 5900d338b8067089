"""The ``voxmesh.v1.Voxtral`` servicer: config checks, then a :class:`RespondSession`."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator

import grpc

from voxmesh import logs
from voxmesh.audio import PIPELINE_SAMPLE_RATE_HZ
from voxmesh.errors import InvalidArgument
from voxmesh.idle_drain import close_when_idle
from voxmesh.language import check_language
from voxmesh.server import SessionSlots
from voxmesh.services.voxtral.engine import ReplyEngine
from voxmesh.services.voxtral.history import History
from voxmesh.services.voxtral.session import RespondSession
from voxmesh.services.voxtral.settings import VoxtralSettings
from voxmesh.services.voxtral.tool_messages import history_tools, session_tools
from voxmesh.v1 import common_pb2, voxtral_pb2, voxtral_pb2_grpc

log = logging.getLogger(__name__)

MODES = {
    "audio": common_pb2.TURN_MODE_AUDIO,
    "stream": common_pb2.TURN_MODE_STREAM,
    "transcribe": common_pb2.TURN_MODE_TRANSCRIBE,
}
_MODE_NAMES = {value: name for name, value in MODES.items()}
MAX_SYSTEM_PROMPT_CHARS = 16_000
#: Voxtral's audio encoder: one BEGIN_AUDIO + 375 tokens per 30 s window (12.5 tokens/s).
AUDIO_TOKENS_PER_30S = 376
#: Room kept for a text user turn (a transcript: ~3 words/s of speech).
TEXT_TURN_TOKENS = 128


class VoxtralServicer(voxtral_pb2_grpc.VoxtralServicer):
    def __init__(self, engine: ReplyEngine, settings: VoxtralSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.slots = SessionSlots.for_service("voxtral", settings.max_sessions)

    def _session(self, config: voxtral_pb2.RespondConfig) -> RespondSession:
        if config.sample_rate_hz not in (0, PIPELINE_SAMPLE_RATE_HZ):
            raise InvalidArgument(
                "config.sample_rate_hz", f"{config.sample_rate_hz} Hz: utterance audio must be 16000 Hz"
            )
        mode = config.mode or MODES[self.settings.mode]
        if mode not in MODES.values():
            raise InvalidArgument("config.mode", f"unknown turn mode {config.mode}")
        # A turn that replies needs the language heard and answered; transcribe mode only heard.
        language = check_language(
            config.language,
            self.engine.languages(replies=mode != common_pb2.TURN_MODE_TRANSCRIBE),
            f"voxtral (engine {self.engine.info.engine}, {_MODE_NAMES[mode]} mode)",
        )
        if len(config.system_prompt) > MAX_SYSTEM_PROMPT_CHARS:
            raise InvalidArgument(
                "config.system_prompt",
                f"{len(config.system_prompt)} characters exceeds {MAX_SYSTEM_PROMPT_CHARS}",
            )
        s = self.settings
        history = History(
            config.system_prompt,
            self.engine.count_tokens,
            context_tokens=self._context_budget(mode),
            history_tokens=s.history_tokens,
        )
        # The instructions ride on every prompt: past the context left beside a reply
        # and a short text turn, every turn would fail, so refuse the session now.
        fits = s.max_model_len - s.max_reply_tokens - TEXT_TURN_TOKENS
        if history.system_tokens > fits:
            raise InvalidArgument(
                "config.system_prompt",
                f"{history.system_tokens} tokens leave no room to answer: the context is "
                f"{s.max_model_len} tokens, {s.max_reply_tokens} of them for the reply",
            )
        # The conversation so far, kept by the gateway: a stream opened on this
        # replica after another one died or drained goes on where it was.
        for exchange in config.history:
            history.record(exchange.turn_id, exchange.user, exchange.assistant, history_tools(exchange))
        return RespondSession(self.engine, self.settings, mode, language, history, session_tools(config))

    def _context_budget(self, mode: int) -> int:
        """What the context leaves for the instructions and past turns, after the reply and this turn.

        This turn is audio in ``audio`` mode (376 tokens per 30 s window), text
        otherwise (a transcript or a typed turn). :class:`History` takes the
        instructions' tokens off this first and drops old turns to fit the
        rest; a larger budget would let a long conversation (or long
        instructions) fill the context and cut replies short or fail turns.
        """
        s = self.settings
        if mode == common_pb2.TURN_MODE_AUDIO:
            this_turn = AUDIO_TOKENS_PER_30S * math.ceil(s.max_utterance_s / 30)
        else:
            this_turn = TEXT_TURN_TOKENS
        return max(0, s.max_model_len - s.max_reply_tokens - this_turn)

    async def Respond(
        self,
        request_iterator: AsyncIterator[voxtral_pb2.RespondRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[voxtral_pb2.RespondResponse]:
        with self.slots.hold():
            first = await anext(aiter(request_iterator), None)
            if first is None:
                return
            if first.WhichOneof("request") != "config":
                raise InvalidArgument("config", "the first message must be a RespondConfig")
            logs.session_id_var.set(first.config.session_id)
            session = self._session(first.config)
            info = self.engine.info
            log.info("session started", extra=logs.fields(engine=info.engine, mode=session.mode))
            yield voxtral_pb2.RespondResponse(
                engine=common_pb2.EngineInfo(
                    engine=info.engine,
                    model=info.model,
                    is_fallback=info.is_fallback,
                    tool_calls=info.tool_calls,
                    # Load, for the gateway's placement of its next sessions.
                    sessions_in_use=self.slots.active,
                    max_sessions=self.slots.limit,
                )
            )
            # Once this replica drains, a session between turns moves at once (voxmesh.idle_drain).
            responses = close_when_idle(session.run(request_iterator), self.slots.drained, session.idle)
            async for response in responses:
                yield response
            log.info("session ended")
