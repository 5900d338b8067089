"""Typed events of a conversation, as the SDK hands them to you."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from voxmesh.v1 import common_pb2, conversation_pb2


@dataclass(frozen=True)
class Engine:
    engine: str
    model: str
    is_fallback: bool
    #: vad only: "silence" or "smart-turn", the endpointing this session got.
    end_of_turn: str = ""
    #: voxtral only: "model", or the stand-in rule that fakes tool calls (echo); "": none.
    tool_calls: str = ""


@dataclass(frozen=True)
class SessionStarted:
    session_id: str
    output_sample_rate_hz: int
    vad: Engine
    voxtral: Engine
    orpheus: Engine
    voice: str


@dataclass(frozen=True)
class SpeechStarted:
    turn_id: int
    audio_offset_ms: float


@dataclass(frozen=True)
class SpeechEnded:
    turn_id: int
    last_voiced_offset_ms: float
    endpoint_offset_ms: float


@dataclass(frozen=True)
class Transcript:
    turn_id: int
    text: str
    is_final: bool


@dataclass(frozen=True)
class ReplyText:
    turn_id: int
    delta: str


@dataclass(frozen=True)
class AudioOut:
    turn_id: int
    sequence: int
    pcm: bytes
    sample_rate_hz: int

    @property
    def samples(self) -> np.ndarray:
        """The audio as float32 in [-1, 1)."""
        return np.frombuffer(self.pcm, dtype="<i2").astype(np.float32) / 32768.0

    @property
    def duration_ms(self) -> float:
        return 1000.0 * len(self.pcm) / 2 / self.sample_rate_hz


@dataclass(frozen=True)
class TurnLatency:
    """Milliseconds; see the proto's TurnLatency for what each counts from."""

    vad_decision_ms: float
    voxtral_first_token_ms: float
    first_phrase_ms: float
    orpheus_first_audio_ms: float
    response_latency_ms: float
    voice_to_voice_ms: float
    gateway_overhead_ms: float


@dataclass(frozen=True)
class TurnComplete:
    turn_id: int
    latency: TurnLatency
    transcript: str
    reply_text: str
    reply_audio_ms: float
    #: Tokens in the prompt the reply was written from (instructions, history, this turn).
    prompt_tokens: int = 0
    #: Written in the user's pause and released at the endpoint (stage marks may be negative).
    speculative: bool = False


@dataclass(frozen=True)
class Interrupted:
    turn_id: int
    spoken_text: str
    audio_sent_ms: float
    #: Reply audio the client had played (its last report, else the gateway's estimate), ms.
    played_ms: float = 0.0


@dataclass(frozen=True)
class KeyPressed:
    """Keys sent with ``press_key`` were taken: they opened turn ``turn_id``, the user's
    text "The caller pressed N." (a reply in progress was interrupted first).
    """

    turn_id: int
    digits: str


@dataclass(frozen=True)
class StageError:
    """A stage failed; the session stays open (``retryable``) where it can."""

    stage: str
    code: str
    message: str
    turn_id: int
    retryable: bool


@dataclass(frozen=True)
class ToolCall:
    """The assistant calls one of the session's tools: run it, then ``send_tool_result(call_id, ...)``.

    Only for a turn the user will hear (a call of a tentative reply waits for its endpoint).
    """

    turn_id: int
    call_id: str
    name: str
    #: The arguments object as JSON text, valid against the tool's parameters schema.
    arguments_json: str
    #: Calls the reply made together (this one included), sent one after another.
    calls_in_round: int = 1

    @property
    def arguments(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.arguments_json or "{}")
        return parsed


@dataclass(frozen=True)
class ToolCallCancelled:
    """Do not run the call (or its result is no longer wanted): "interrupted", "timed_out" or "failed"."""

    turn_id: int
    call_id: str
    reason: str


Event = (
    SessionStarted
    | SpeechStarted
    | SpeechEnded
    | Transcript
    | ReplyText
    | AudioOut
    | TurnComplete
    | Interrupted
    | KeyPressed
    | StageError
    | ToolCall
    | ToolCallCancelled
)


def _engine(info: common_pb2.EngineInfo) -> Engine:
    return Engine(info.engine, info.model, info.is_fallback, info.end_of_turn, info.tool_calls)


def from_proto(message: conversation_pb2.ConverseResponse) -> Event:
    kind = message.WhichOneof("event")
    m = getattr(message, kind)
    if kind == "session_started":
        return SessionStarted(
            m.session_id,
            m.output_sample_rate_hz,
            _engine(m.vad),
            _engine(m.voxtral),
            _engine(m.orpheus),
            m.voice,
        )
    if kind == "speech_started":
        return SpeechStarted(m.turn_id, m.audio_offset_ms)
    if kind == "speech_ended":
        return SpeechEnded(m.turn_id, m.last_voiced_offset_ms, m.endpoint_offset_ms)
    if kind == "transcript":
        return Transcript(m.turn_id, m.text, m.is_final)
    if kind == "reply_text":
        return ReplyText(m.turn_id, m.delta)
    if kind == "audio":
        return AudioOut(m.turn_id, m.sequence, m.pcm, m.sample_rate_hz)
    if kind == "turn_complete":
        lat = m.latency
        return TurnComplete(
            m.turn_id,
            TurnLatency(
                lat.vad_decision_ms,
                lat.voxtral_first_token_ms,
                lat.first_phrase_ms,
                lat.orpheus_first_audio_ms,
                lat.response_latency_ms,
                lat.voice_to_voice_ms,
                lat.gateway_overhead_ms,
            ),
            m.transcript,
            m.reply_text,
            m.reply_audio_ms,
            m.prompt_tokens,
            m.speculative,
        )
    if kind == "interrupted":
        return Interrupted(m.turn_id, m.spoken_text, m.audio_sent_ms, m.played_ms)
    if kind == "key_pressed":
        return KeyPressed(m.turn_id, m.digits)
    if kind == "tool_call":
        return ToolCall(m.turn_id, m.call_id, m.name, m.arguments_json, m.calls_in_round)
    if kind == "tool_call_cancelled":
        return ToolCallCancelled(m.turn_id, m.call_id, m.reason)
    if kind == "error":
        stage = common_pb2.Stage.Name(m.stage).removeprefix("STAGE_").lower()
        return StageError(stage, m.code, m.message, m.turn_id, m.retryable)
    raise ValueError(f"unknown event {kind!r}: upgrade the voxmesh client")
