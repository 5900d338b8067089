"""Client → gateway messages, shared by the async and the blocking API."""

from __future__ import annotations

from collections.abc import Iterator

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
) -> conversation_pb2.ConverseRequest:
    """The SessionConfig. ``end_of_turn``: "silence" or "semantic" (the end-of-turn
    model), "" for the vad's own setting; ``eagerness`` (semantic): low/medium/high;
    ``silence_duration_ms`` / ``prefix_padding_ms``: 0 for the vad's defaults.
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
        )
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
