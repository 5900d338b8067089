"""The client's SessionConfig, validated into the gateway's own types."""

from __future__ import annotations

from dataclasses import dataclass, field

from voxmesh.audio import DEFAULT_OUTPUT_SAMPLE_RATE_HZ, PIPELINE_SAMPLE_RATE_HZ, check_sample_rate
from voxmesh.errors import InvalidArgument
from voxmesh.gateway.tool_calls import DeclaredTools, declared_tools
from voxmesh.language import DEFAULT_LANGUAGE, language_code
from voxmesh.turn_detection import PREFIX_PADDING_RANGE_MS, SILENCE_DURATION_RANGE_MS
from voxmesh.v1 import common_pb2, conversation_pb2

#: Longest system prompt accepted, in characters (it rides along every prompt).
MAX_SYSTEM_PROMPT_CHARS = 8_000
MAX_VOICE_CHARS = 64


@dataclass(frozen=True)
class SessionOptions:
    input_sample_rate_hz: int
    output_sample_rate_hz: int
    voice: str
    language: str
    system_prompt: str
    vad_sensitivity: int
    turn_mode: int
    #: config.turn_detection, checked; 0 / UNSPECIFIED mean the vad service's own settings.
    end_of_turn: int = common_pb2.END_OF_TURN_MODE_UNSPECIFIED
    eagerness: int = common_pb2.EAGERNESS_UNSPECIFIED
    hangover_ms: int = 0
    pre_roll_ms: int = 0
    #: config.tools / tool_choice / tools_wait_for_reply, checked (gateway.tool_calls).
    tools: DeclaredTools = field(default_factory=DeclaredTools)


def _check_enum(value: int, enum: object, field: str) -> int:
    valid = set(getattr(enum, "values")())  # noqa: B009 - protobuf enum wrappers are untyped
    if value not in valid:
        raise InvalidArgument(field, f"unknown value {value}")
    return value


def session_options(config: conversation_pb2.SessionConfig, default_voice: str = "") -> SessionOptions:
    """Validate a SessionConfig; raises InvalidArgument naming the bad field."""
    if config.input_sample_rate_hz == 0:
        # The client must say what it sends: a wrong guess garbles every word.
        raise InvalidArgument(
            "config.input_sample_rate_hz", "required (the SDK sends 16000 unless told otherwise)"
        )
    input_rate = check_sample_rate(
        config.input_sample_rate_hz, "config.input_sample_rate_hz", PIPELINE_SAMPLE_RATE_HZ
    )
    output_rate = check_sample_rate(
        config.output_sample_rate_hz, "config.output_sample_rate_hz", DEFAULT_OUTPUT_SAMPLE_RATE_HZ
    )
    if config.input_encoding not in (common_pb2.AUDIO_ENCODING_UNSPECIFIED, common_pb2.AUDIO_ENCODING_PCM16):
        raise InvalidArgument(
            "config.input_encoding", f"unsupported encoding {config.input_encoding}; use PCM16"
        )
    if len(config.system_prompt) > MAX_SYSTEM_PROMPT_CHARS:
        raise InvalidArgument("config.system_prompt", f"longer than {MAX_SYSTEM_PROMPT_CHARS} characters")
    if len(config.voice) > MAX_VOICE_CHARS:
        raise InvalidArgument("config.voice", f"longer than {MAX_VOICE_CHARS} characters")
    # Only the tag's shape and length are checked here; which languages the
    # mesh speaks is each stage's to say: voxtral and orpheus refuse the
    # stream's config (INVALID_ARGUMENT naming config.language) when it opens,
    # which the gateway does before SessionStarted.
    language_code(config.language)
    turn = config.turn_detection
    for name, value, (low, high) in (
        ("silence_duration_ms", turn.silence_duration_ms, SILENCE_DURATION_RANGE_MS),
        ("prefix_padding_ms", turn.prefix_padding_ms, PREFIX_PADDING_RANGE_MS),
    ):
        if value and not low <= value <= high:
            raise InvalidArgument(
                f"config.turn_detection.{name}", f"{value} ms is outside {low}..{high} ms (0: the vad default)"
            )
    return SessionOptions(
        input_sample_rate_hz=input_rate,
        output_sample_rate_hz=output_rate,
        voice=config.voice or default_voice,
        language=config.language or DEFAULT_LANGUAGE,
        system_prompt=config.system_prompt,
        vad_sensitivity=_check_enum(
            config.vad_sensitivity, common_pb2.VadSensitivity, "config.vad_sensitivity"
        ),
        turn_mode=_check_enum(config.turn_mode, common_pb2.TurnMode, "config.turn_mode"),
        end_of_turn=_check_enum(turn.mode, common_pb2.EndOfTurnMode, "config.turn_detection.mode"),
        eagerness=_check_enum(turn.eagerness, common_pb2.Eagerness, "config.turn_detection.eagerness"),
        hangover_ms=turn.silence_duration_ms,
        pre_roll_ms=turn.prefix_padding_ms,
        tools=declared_tools(config),
    )
