"""The ``voxmesh.v1.VoiceActivity`` servicer: config checks, then frames → events.

Audio arrives in chunks of any length; it is cut into the engine's frame
size here, and the remainder waits for the next chunk. Classifying a frame
costs microseconds (webrtcvad) to half a millisecond (silero), so it runs
inline on the event loop rather than paying a thread hop per chunk. The
end-of-turn model (``--end-of-turn smart-turn``, :mod:`.end_of_turn`) is the
exception: ~60-400 ms a call, once per pause, in a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc

from voxmesh import logs
from voxmesh.audio import MAX_CHUNK_BYTES
from voxmesh.errors import InvalidArgument, InvalidAudio
from voxmesh.server import SessionSlots
from voxmesh.services.vad.eagerness import doubtful_for, policy_for
from voxmesh.services.vad.end_of_turn import EndOfTurnPolicy, Endpointer
from voxmesh.services.vad.engine import FrameClassifier, VadEngine
from voxmesh.services.vad.segmenter import (
    Segmenter,
    SpeechConfirmed,
    SpeechEnded,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
)
from voxmesh.services.vad.settings import VadSettings
from voxmesh.services.vad.smart_turn import SmartTurnModel
from voxmesh.v1 import common_pb2, vad_pb2, vad_pb2_grpc

log = logging.getLogger(__name__)

#: Bounds on the per-stream timing knobs, in milliseconds (0 = service default).
PRE_ROLL_MAX_MS = 2_000
HANGOVER_RANGE_MS = (100, 5_000)
MIN_SPEECH_MAX_MS = 2_000
CONFIRM_SPEECH_MAX_MS = 5_000


def _ms(value: int, default: int, field: str, low: int, high: int) -> int:
    value = value or default
    if not low <= value <= high:
        raise InvalidArgument(field, f"{value} ms is outside {low}..{high} ms")
    return value


class VadServicer(vad_pb2_grpc.VoiceActivityServicer):
    def __init__(self, engine: VadEngine, settings: VadSettings) -> None:
        self.engine = engine
        self.settings = settings
        # Loaded once at start-up (fails fast), shared by every stream.
        self.turn_model = (
            SmartTurnModel.load(settings.smart_turn_model) if settings.end_of_turn == "smart-turn" else None
        )
        self.slots = SessionSlots.for_service("vad", settings.max_sessions)

    def _open(self, config: vad_pb2.DetectConfig) -> tuple[FrameClassifier, Endpointer]:
        rate = config.sample_rate_hz
        if rate not in self.engine.sample_rates:
            raise InvalidArgument(
                "config.sample_rate_hz",
                f"{rate} Hz is not accepted by {self.engine.info.engine}; use one of {self.engine.sample_rates}",
            )
        s = self.settings
        pre_roll = _ms(config.pre_roll_ms, s.pre_roll_ms, "config.pre_roll_ms", 0, PRE_ROLL_MAX_MS)
        hangover = _ms(config.hangover_ms, s.hangover_ms, "config.hangover_ms", *HANGOVER_RANGE_MS)
        min_speech = _ms(config.min_speech_ms, s.min_speech_ms, "config.min_speech_ms", 1, MIN_SPEECH_MAX_MS)
        confirm_speech = config.confirm_speech_ms
        if confirm_speech > CONFIRM_SPEECH_MAX_MS:
            raise InvalidArgument(
                "config.confirm_speech_ms", f"{confirm_speech} ms is outside 0..{CONFIRM_SPEECH_MAX_MS} ms"
            )
        pause = config.pause_ms
        if pause > HANGOVER_RANGE_MS[1]:
            raise InvalidArgument("config.pause_ms", f"{pause} ms is outside 0..{HANGOVER_RANGE_MS[1]} ms")
        sensitivity = config.sensitivity or common_pb2.VAD_SENSITIVITY_MEDIUM
        if sensitivity not in common_pb2.VadSensitivity.values():
            raise InvalidArgument("config.sensitivity", f"unknown value {sensitivity}")
        if config.end_of_turn not in common_pb2.EndOfTurnMode.values():
            raise InvalidArgument("config.end_of_turn", f"unknown value {config.end_of_turn}")
        if config.eagerness not in common_pb2.Eagerness.values():
            raise InvalidArgument("config.eagerness", f"unknown value {config.eagerness}")
        classifier = self.engine.classifier(rate, sensitivity)
        per_ms = rate // 1000
        segmenter = Segmenter(
            pre_roll * per_ms, hangover * per_ms, min_speech * per_ms, confirm_speech * per_ms, pause * per_ms
        )
        # SEMANTIC with no model loaded is silence endpointing, not a refusal: the
        # stream's EngineInfo.end_of_turn tells the client which one it got.
        if self.turn_model is None or config.end_of_turn == common_pb2.END_OF_TURN_MODE_SILENCE:
            return classifier, Endpointer(segmenter, rate, classifier.frame_samples, voice_edge=s.voice_edge)
        policy = policy_for(
            EndOfTurnPolicy(
                s.turn_complete_hangover_ms * per_ms,
                s.turn_incomplete_hangover_ms * per_ms,
                s.turn_complete_threshold,
            ),
            config.eagerness,
        )
        return classifier, Endpointer(
            segmenter,
            rate,
            classifier.frame_samples,
            self.turn_model,
            policy,
            doubtful_hangover=doubtful_for(s.turn_doubtful_hangover_ms * per_ms, config.eagerness),
            doubtful_threshold=s.turn_doubtful_threshold,
            voice_edge=s.voice_edge,
        )

    async def Detect(
        self,
        request_iterator: AsyncIterator[vad_pb2.DetectRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[vad_pb2.DetectResponse]:
        with self.slots.hold():
            first = await anext(aiter(request_iterator), None)
            if first is None:
                return
            if first.WhichOneof("request") != "config":
                raise InvalidArgument("config", "the first message must be a DetectConfig")
            logs.session_id_var.set(first.config.session_id)
            classifier, endpointer = self._open(first.config)
            info = self.engine.info
            yield vad_pb2.DetectResponse(
                engine=common_pb2.EngineInfo(
                    engine=info.engine,
                    model=info.model,
                    is_fallback=info.is_fallback,
                    # Load, for the gateway's placement of its next sessions.
                    sessions_in_use=self.slots.active,
                    max_sessions=self.slots.limit,
                    end_of_turn="silence" if endpointer.model is None else "smart-turn",
                )
            )
            frame_bytes = 2 * classifier.frame_samples
            pending = b""
            async for request in request_iterator:
                kind = request.WhichOneof("request")
                if kind == "config":
                    raise InvalidArgument("config", "sent twice: the config is the first message only")
                if kind != "audio":
                    raise InvalidArgument("request", "empty message: set config or audio")
                if len(request.audio) > MAX_CHUNK_BYTES:
                    raise InvalidAudio("audio", f"{len(request.audio)} bytes exceeds {MAX_CHUNK_BYTES}")
                if len(request.audio) % 2:
                    raise InvalidAudio(
                        "audio", f"PCM16 needs an even number of bytes, got {len(request.audio)}"
                    )
                pending += request.audio
                usable = len(pending) - len(pending) % frame_bytes
                for offset in range(0, usable, frame_bytes):
                    frame = pending[offset : offset + frame_bytes]
                    event = await endpointer.feed(frame, classifier.is_speech(frame))
                    if isinstance(event, SpeechStarted):
                        log.info("speech started", extra=logs.fields(onset_sample=event.onset_sample))
                        yield vad_pb2.DetectResponse(
                            speech_started=vad_pb2.VoiceStart(
                                utterance_start_sample=event.utterance_start_sample,
                                onset_sample=event.onset_sample,
                                decided_at_sample=event.decided_at_sample,
                            )
                        )
                    elif isinstance(event, SpeechConfirmed):
                        yield vad_pb2.DetectResponse(
                            speech_confirmed=vad_pb2.VoiceConfirmed(
                                voiced_samples=event.voiced_samples,
                                decided_at_sample=event.decided_at_sample,
                            )
                        )
                    elif isinstance(event, SpeechPaused):
                        yield vad_pb2.DetectResponse(
                            speech_paused=vad_pb2.VoicePause(
                                last_voiced_sample=event.last_voiced_sample,
                                decided_at_sample=event.decided_at_sample,
                            )
                        )
                    elif isinstance(event, SpeechResumed):
                        yield vad_pb2.DetectResponse(
                            speech_resumed=vad_pb2.VoiceResume(onset_sample=event.onset_sample)
                        )
                    elif isinstance(event, SpeechEnded):
                        log.info(
                            "speech ended", extra=logs.fields(last_voiced_sample=event.last_voiced_sample)
                        )
                        yield vad_pb2.DetectResponse(
                            speech_ended=vad_pb2.VoiceEnd(
                                last_voiced_sample=event.last_voiced_sample,
                                decided_at_sample=event.decided_at_sample,
                                turn_complete_probability=endpointer.probability_for(
                                    event.last_voiced_sample
                                ),
                            )
                        )
                pending = pending[usable:]
