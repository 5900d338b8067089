"""Client → gateway messages, shared by the async and the blocking API."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voxmesh.audio import MAX_CHUNK_BYTES, float_to_pcm16
from voxmesh.v1 import common_pb2, conversation_pb2

TURN_MODES = {
    "": common_pb2.TURN_MODE_UNSPECIFIED,
    "audio": common_pb2.TURN_MODE_AUDIO,
    "stream": common_pb2.TURN_MODE_STREAM,
    "transcribe": common_pb2.TURN_MODE_TRANSCRIBE,
}
END_OF_TURN_MODES = {
    "": common_pb2.END_OF_TURN_MODE_UNSPECIFIED,
    "silence": common_pb2.END_OF_TURN_MODE_SILENCE,
    "semantic": common_pb2.END_OF_TURN_MODE_SEMANTIC,
}
EAGERNESS = {
    "": common_pb2.EAGERNESS_UNSPECIFIED,
    "low": common_pb2.EAGERNESS_LOW,
    "medium": common_pb2.EAGERNESS_MEDIUM,
    "high": common_pb2.EAGERNESS_HIGH,
}
VAD_SENSITIVITIES = {
    "": common_pb2.VAD_SENSITIVITY_UNSPECIFIED,
    "low": common_pb2.VAD_SENSITIVITY_LOW,
    "medium": common_pb2.VAD_SENSITIVITY_MEDIUM,
    "high": common_pb2.VAD_SENSITIVITY_HIGH,
    "very_high": common_pb2.VAD_SENSITIVITY_VERY_HIGH,
}


@dataclass(frozen=True)
class Tool:
    """A function the assistant may call: its name, what it does, and its arguments' JSON Schema."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    @classmethod
    def from_openai(cls, tool: Mapping[str, Any]) -> Tool:
        """An OpenAI function tool: ``{"type": "function", "name", "description", "parameters"}``
        (Realtime's flat form) or ``{"type": "function", "function": {...}}`` (Chat Completions').
        """
        spec = tool.get("function", tool)
        return cls(spec["name"], spec.get("description", ""), spec.get("parameters") or {"type": "object"})


def _tool_proto(tool: Tool | Mapping[str, Any]) -> common_pb2.Tool:
    spec = tool if isinstance(tool, Tool) else Tool.from_openai(tool)
    return common_pb2.Tool(
        name=spec.name, description=spec.description, parameters_json=json.dumps(dict(spec.parameters))
    )


def config_request(
    *,
    sample_rate_hz: int = 16_000,
    output_sample_rate_hz: int = 24_000,
    voice: str = "",
    language: str = "",
    system_prompt: str = "",
    turn_mode: str = "",
    vad_sensitivity: str = "",
    end_of_turn: str = "",
    eagerness: str = "",
    silence_duration_ms: int = 0,
    prefix_padding_ms: int = 0,
    tools: Sequence[Tool | Mapping[str, Any]] = (),
    tool_choice: str = "",
    tools_wait_for_reply: bool = False,
) -> conversation_pb2.ConverseRequest:
    """The SessionConfig. ``end_of_turn``: "silence" or "semantic" (the end-of-turn
    model), "" for the vad's own setting; ``eagerness`` (semantic): low/medium/high;
    ``silence_duration_ms`` / ``prefix_padding_ms``: 0 for the vad's defaults.
    ``tools``: :class:`Tool` s or OpenAI function-tool dicts; ``tool_choice``: "auto"
    (or ""), "none", "required" or a tool's name; ``tools_wait_for_reply``: results
    wait for :meth:`request_reply` instead of the reply going on by itself.
    """
    if turn_mode not in TURN_MODES:
        raise ValueError(f"turn_mode must be one of {sorted(TURN_MODES)}, got {turn_mode!r}")
    if vad_sensitivity not in VAD_SENSITIVITIES:
        raise ValueError(
            f"vad_sensitivity must be one of {sorted(VAD_SENSITIVITIES)}, got {vad_sensitivity!r}"
        )
    if end_of_turn not in END_OF_TURN_MODES:
        raise ValueError(f"end_of_turn must be one of {sorted(END_OF_TURN_MODES)}, got {end_of_turn!r}")
    if eagerness not in EAGERNESS:
        raise ValueError(f"eagerness must be one of {sorted(EAGERNESS)}, got {eagerness!r}")
    return conversation_pb2.ConverseRequest(
        config=conversation_pb2.SessionConfig(
            input_sample_rate_hz=sample_rate_hz,
            input_encoding=common_pb2.AUDIO_ENCODING_PCM16,
            output_sample_rate_hz=output_sample_rate_hz,
            voice=voice,
            language=language,
            system_prompt=system_prompt,
            turn_mode=TURN_MODES[turn_mode],
            vad_sensitivity=VAD_SENSITIVITIES[vad_sensitivity],
            turn_detection=conversation_pb2.TurnDetection(
                mode=END_OF_TURN_MODES[end_of_turn],
                eagerness=EAGERNESS[eagerness],
                silence_duration_ms=silence_duration_ms,
                prefix_padding_ms=prefix_padding_ms,
            ),
            tools=[_tool_proto(t) for t in tools],
            tool_choice=tool_choice,
            tools_wait_for_reply=tools_wait_for_reply,
        )
    )


def tool_result_request(call_id: str, output: Any = "", error: str = "") -> conversation_pb2.ConverseRequest:
    """A ToolCall's result: ``output`` as text (anything else is sent as JSON), or ``error`` if the tool failed."""
    text = output if isinstance(output, str) else json.dumps(output)
    return conversation_pb2.ConverseRequest(
        tool_result=common_pb2.ToolResult(call_id=call_id, output=text, error=error)
    )


def audio_requests(audio: bytes | np.ndarray) -> Iterator[conversation_pb2.ConverseRequest]:
    """PCM16 bytes, int16 samples or float samples in [-1, 1] → chunks within the size bound."""
    if isinstance(audio, np.ndarray):
        pcm = audio.astype("<i2").tobytes() if audio.dtype == np.int16 else float_to_pcm16(audio)
    else:
        pcm = bytes(audio)
    for start in range(0, len(pcm), MAX_CHUNK_BYTES):
        yield conversation_pb2.ConverseRequest(
            audio=conversation_pb2.AudioChunk(pcm=pcm[start : start + MAX_CHUNK_BYTES])
        )


def text_request(text: str, instructions: str = "") -> conversation_pb2.ConverseRequest:
    return conversation_pb2.ConverseRequest(
        text=conversation_pb2.TextInput(text=text, instructions=instructions)
    )


def reply_request(instructions: str = "") -> conversation_pb2.ConverseRequest:
    return conversation_pb2.ConverseRequest(reply=conversation_pb2.ReplyRequest(instructions=instructions))


def context_request(text: str) -> conversation_pb2.ConverseRequest:
    return conversation_pb2.ConverseRequest(context=conversation_pb2.ContextText(text=text))


def instructions_request(system_prompt: str) -> conversation_pb2.ConverseRequest:
    return conversation_pb2.ConverseRequest(
        instructions=conversation_pb2.InstructionsUpdate(system_prompt=system_prompt)
    )


def key_press_request(digits: str) -> conversation_pb2.ConverseRequest:
    return conversation_pb2.ConverseRequest(key_press=conversation_pb2.KeyPress(digits=digits))


def playback_request(turn_id: int, played_ms: float) -> conversation_pb2.ConverseRequest:
    return conversation_pb2.ConverseRequest(
        playback=conversation_pb2.PlaybackPosition(turn_id=turn_id, played_ms=played_ms)
    )


def control_request(action: int) -> conversation_pb2.ConverseRequest:
    return conversation_pb2.ConverseRequest(control=conversation_pb2.Control(action=action))  # type: ignore[arg-type]


INTERRUPT = conversation_pb2.Control.ACTION_INTERRUPT
END_OF_INPUT = conversation_pb2.Control.ACTION_END_OF_INPUT


def call_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()
