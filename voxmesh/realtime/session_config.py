"""``session.update`` → what the gateway's SessionConfig can express, and back.

Every field OpenAI's GA session object has is either mapped or refused with a
``ProtocolError`` naming it: a client that asks for MCP tools or text-only output
learns it did not get them instead of being ignored. What mainstream clients
send by default (LiveKit's semantic_vad and "marin", Pipecat's server_vad
timings) is always served: mapped, or clamped into a documented bound.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from voxmesh.client import SessionStarted
from voxmesh.realtime.audio_formats import AudioFormat
from voxmesh.realtime.function_calls import session_tool_choice, session_tools, tool_choice_json
from voxmesh.realtime.protocol_error import ProtocolError, unsupported
from voxmesh.realtime.voices import orpheus_voice
from voxmesh.turn_detection import PREFIX_PADDING_RANGE_MS, SILENCE_DURATION_RANGE_MS, clamp

#: Read-only fields a client may echo back from session.created; they change nothing.
_ECHOED = {"id", "object", "expires_at", "voxmesh"}
#: OpenAI's server_vad threshold (0..1, higher = needs louder speech) → the gateway's VAD sensitivity.
_THRESHOLD_STEPS = ((0.25, "very_high"), (0.5, "high"), (0.75, "medium"), (1.0, "low"))
#: turn_detection.type → the gateway's end_of_turn; semantic_vad is the vad's end-of-turn model.
_END_OF_TURN = {"server_vad": "silence", "semantic_vad": "semantic"}
#: semantic_vad eagerness → the gateway's; OpenAI documents auto as medium.
_EAGERNESS = {"low": "low", "medium": "medium", "high": "high", "auto": "medium"}


@dataclass(frozen=True)
class EdgeSessionConfig:
    """The session as the edge holds it; ``gateway_config()`` is the part a Converse stream fixes."""

    instructions: str = ""
    voice: str = ""
    language: str = ""
    input_format: AudioFormat = field(default_factory=AudioFormat)
    output_format: AudioFormat = field(default_factory=AudioFormat)
    #: server_vad (the gateway's VAD ends turns) or None (the client commits turns).
    server_vad: bool = True
    vad_threshold: float | None = None
    #: The turn_detection type the client named ("" if it never did: the vad's own settings).
    turn_type: str = ""
    eagerness: str = ""
    #: server_vad timing, clamped into the documented bounds (voxmesh.turn_detection).
    silence_duration_ms: int | None = None
    prefix_padding_ms: int | None = None
    #: What was served otherwise than asked (a clamped value), said in session.updated.
    adjustments: tuple[str, ...] = ()
    #: session.tools (OpenAI function tools) and tool_choice (voxmesh.realtime.function_calls).
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: str = "auto"

    @property
    def vad_sensitivity(self) -> str:
        if self.vad_threshold is None:
            return ""
        return next(name for limit, name in _THRESHOLD_STEPS if self.vad_threshold <= limit)

    def gateway_config(self) -> dict[str, Any]:
        """Keyword arguments of ``AsyncSession.connect``."""
        return {
            "sample_rate_hz": self.input_format.rate_hz,
            "output_sample_rate_hz": self.output_format.rate_hz,
            "voice": orpheus_voice(self.voice),
            "language": self.language,
            "system_prompt": self.instructions,
            "vad_sensitivity": self.vad_sensitivity,
            "end_of_turn": _END_OF_TURN.get(self.turn_type, ""),
            "eagerness": _EAGERNESS.get(self.eagerness, ""),
            "silence_duration_ms": self.silence_duration_ms or 0,
            "prefix_padding_ms": self.prefix_padding_ms or 0,
            "tools": self.tools,
            "tool_choice": self.tool_choice if self.tools else "",
            # A call's outputs wait for the client's response.create, as GA clients send it.
            "tools_wait_for_reply": bool(self.tools),
        }

    def updated(self, session: Any) -> EdgeSessionConfig:
        """Apply a ``session.update``'s session object; raises ProtocolError naming the first bad field."""
        if not isinstance(session, dict):
            raise ProtocolError("session must be an object", param="session")
        changes: dict[str, Any] = {}
        for key, value in session.items():
            param = f"session.{key}"
            if key in _ECHOED or key == "model":
                # The mesh's engines answer whatever model is named; session.created says which.
                continue
            if key == "type":
                if value != "realtime":
                    raise unsupported(param, f"session type {value!r} (only 'realtime')")
            elif key == "instructions":
                changes["instructions"] = _string(value, param)
            elif key == "output_modalities":
                if value != ["audio"]:
                    raise unsupported(
                        param, f"{value!r} (voxmesh always answers with audio and its transcript: ['audio'])"
                    )
            elif key == "audio":
                changes.update(_audio(value, param))
            elif key == "tools":
                changes["tools"] = session_tools(value, param)
            elif key == "tool_choice":
                changes["tool_choice"] = session_tool_choice(value, param)
            elif key == "max_output_tokens":
                if value not in (None, "inf"):
                    raise unsupported(param, "a reply length cap (only 'inf')")
            elif key in ("tracing", "prompt", "include"):
                if value is not None:
                    raise unsupported(param, f"{key}")
            elif key == "truncation":
                if value not in (None, "auto"):
                    raise unsupported(
                        param, f"truncation {value!r} (the mesh drops the oldest turns: 'auto')"
                    )
            else:
                raise ProtocolError(f"unknown parameter {key!r}", param=param, code="unknown_parameter")
        return dataclasses.replace(self, **changes)

    def as_json(self, started: SessionStarted | None) -> dict[str, Any]:
        """The GA session object of session.created / session.updated."""
        turn_detection: dict[str, Any] | None = None
        if self.server_vad and self.turn_type == "semantic_vad":
            turn_detection = {
                "type": "semantic_vad",
                "eagerness": self.eagerness or "auto",
                "create_response": True,
                "interrupt_response": True,
            }
        elif self.server_vad:
            turn_detection = {
                "type": "server_vad",
                "threshold": self.vad_threshold,
                "silence_duration_ms": self.silence_duration_ms,
                "prefix_padding_ms": self.prefix_padding_ms,
                "create_response": True,
                "interrupt_response": True,
            }
        voice = self.voice or (started.voice if started else "")
        body: dict[str, Any] = {
            "type": "realtime",
            "object": "realtime.session",
            "id": started.session_id if started else None,
            "model": started.voxtral.model if started else None,
            "output_modalities": ["audio"],
            "instructions": self.instructions,
            "audio": {
                "input": {
                    "format": self.input_format.as_json(),
                    "transcription": {
                        "model": started.voxtral.model if started else None,
                        "language": self.language or None,
                    },
                    "noise_reduction": None,
                    "turn_detection": turn_detection,
                },
                "output": {"format": self.output_format.as_json(), "voice": voice, "speed": 1.0},
            },
            "tools": list(self.tools),
            "tool_choice": tool_choice_json(self.tool_choice),
            "max_output_tokens": "inf",
            "truncation": "auto",
            "tracing": None,
            "prompt": None,
        }
        if started is not None:
            # Which engines answer, so a loop-back is never mistaken for a model;
            # the voice and endpointing actually in force, and what was adjusted.
            body["voxmesh"] = {
                "engines": {
                    stage: dataclasses.asdict(getattr(started, stage))
                    for stage in ("vad", "voxtral", "orpheus")
                },
                "voice": started.voice,
                "end_of_turn": started.vad.end_of_turn,
                "adjustments": list(self.adjustments),
            }
        return body


def _string(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise ProtocolError(f"{param} must be a string", param=param)
    return value


def _object(value: Any, param: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"{param} must be an object", param=param)
    for key in value:
        if key not in allowed:
            raise ProtocolError(
                f"unknown parameter {key!r}", param=f"{param}.{key}", code="unknown_parameter"
            )
    return value


def _audio(value: Any, param: str) -> dict[str, Any]:
    audio = _object(value, param, {"input", "output"})
    changes: dict[str, Any] = {}
    if (inp := audio.get("input")) is not None:
        p = f"{param}.input"
        inp = _object(inp, p, {"format", "transcription", "noise_reduction", "turn_detection"})
        if "format" in inp:
            changes["input_format"] = AudioFormat.parse(inp["format"], f"{p}.format")
        if inp.get("noise_reduction") is not None:
            raise unsupported(f"{p}.noise_reduction", "noise reduction")
        if (transcription := inp.get("transcription")) is not None:
            # voxmesh always transcribes, with the voxtral stage's model; only the language maps.
            t = _object(transcription, f"{p}.transcription", {"model", "language", "prompt"})
            if t.get("prompt"):
                raise unsupported(f"{p}.transcription.prompt", "a transcription prompt")
            if t.get("language") is not None:
                changes["language"] = _string(t["language"], f"{p}.transcription.language")
        if "turn_detection" in inp:
            changes.update(_turn_detection(inp["turn_detection"], f"{p}.turn_detection"))
    if (out := audio.get("output")) is not None:
        p = f"{param}.output"
        out = _object(out, p, {"format", "voice", "speed"})
        if "format" in out:
            changes["output_format"] = AudioFormat.parse(out["format"], f"{p}.format")
        if "voice" in out:
            changes["voice"] = _string(out["voice"], f"{p}.voice")
        if out.get("speed", 1.0) != 1.0:
            raise unsupported(f"{p}.speed", "a speed other than 1.0")
    return changes


def _turn_detection(value: Any, param: str) -> dict[str, Any]:
    """server_vad and semantic_vad map onto the vad's end-of-turn settings for this session.

    Timing values a mainstream client sends by default are never refused:
    outside voxmesh's bounds they are clamped to the nearest bound and the
    clamp is said in session.updated (``voxmesh.adjustments``).
    """
    if value is None:
        return {"server_vad": False, "turn_type": "", "adjustments": ()}
    td = _object(
        value,
        param,
        {
            "type",
            "threshold",
            "prefix_padding_ms",
            "silence_duration_ms",
            "create_response",
            "interrupt_response",
            "idle_timeout_ms",
            "eagerness",
        },
    )
    kind = td.get("type")
    if not isinstance(kind, str) or kind not in _END_OF_TURN:
        raise unsupported(
            f"{param}.type", f"turn detection {kind!r} (only 'server_vad', 'semantic_vad' or null)"
        )
    if td.get("idle_timeout_ms") is not None:
        raise unsupported(f"{param}.idle_timeout_ms", "an idle timeout (no reply is made to silence)")
    for key in ("create_response", "interrupt_response"):
        if td.get(key, True) is not True:
            raise unsupported(
                f"{param}.{key}", f"{key}=false (the gateway always answers and always lets a user barge in)"
            )
    eagerness = td.get("eagerness")
    if eagerness is not None and (not isinstance(eagerness, str) or eagerness not in _EAGERNESS):
        raise ProtocolError(
            f"eagerness must be one of {sorted(_EAGERNESS)}, got {eagerness!r}", param=f"{param}.eagerness"
        )
    threshold = td.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0
    ):
        raise ProtocolError(
            f"threshold must be a number in 0..1, got {threshold!r}", param=f"{param}.threshold"
        )
    adjustments: list[str] = []
    timing: dict[str, int | None] = {}
    for key, bounds in (
        ("silence_duration_ms", SILENCE_DURATION_RANGE_MS),
        ("prefix_padding_ms", PREFIX_PADDING_RANGE_MS),
    ):
        asked = td.get(key)
        if asked is None:
            timing[key] = None
            continue
        if isinstance(asked, bool) or not isinstance(asked, int | float) or asked < 0:
            raise ProtocolError(
                f"{key} must be a non-negative number of ms, got {asked!r}", param=f"{param}.{key}"
            )
        timing[key] = clamp(round(asked), bounds)
        if timing[key] != asked:
            adjustments.append(
                f"{param}.{key}: {asked} ms served as {timing[key]} ms (voxmesh takes {bounds[0]}..{bounds[1]})"
            )
    return {
        "server_vad": True,
        "turn_type": kind,
        "eagerness": eagerness or "",
        "vad_threshold": None if threshold is None else float(threshold),
        "silence_duration_ms": timing["silence_duration_ms"],
        "prefix_padding_ms": timing["prefix_padding_ms"],
        "adjustments": tuple(adjustments),
    }
