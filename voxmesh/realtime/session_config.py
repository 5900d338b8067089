"""``session.update`` → what the gateway's SessionConfig can express, and back.

Every field OpenAI's GA session object has is either mapped or refused with a
``ProtocolError`` naming it: a client that asks for tools, text-only output or
a VAD silence duration learns it did not get them instead of being ignored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from voxmesh.client import SessionStarted
from voxmesh.realtime.audio_formats import AudioFormat
from voxmesh.realtime.protocol_error import ProtocolError, unsupported

#: Read-only fields a client may echo back from session.created; they change nothing.
_ECHOED = {"id", "object", "expires_at", "voxmesh"}
#: OpenAI's server_vad threshold (0..1, higher = needs louder speech) → the gateway's VAD sensitivity.
_THRESHOLD_STEPS = ((0.25, "very_high"), (0.5, "high"), (0.75, "medium"), (1.0, "low"))


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
            "voice": self.voice,
            "language": self.language,
            "system_prompt": self.instructions,
            "vad_sensitivity": self.vad_sensitivity,
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
                if value not in (None, []):
                    raise unsupported(param, "tools (function calling, MCP)")
            elif key == "tool_choice":
                if value not in (None, "auto", "none"):
                    raise unsupported(param, f"tool_choice {value!r}")
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
        turn_detection = (
            {
                "type": "server_vad",
                "threshold": self.vad_threshold,
                "create_response": True,
                "interrupt_response": True,
            }
            if self.server_vad
            else None
        )
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
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "truncation": "auto",
            "tracing": None,
            "prompt": None,
        }
        if started is not None:
            # Which engines answer, so a loop-back is never mistaken for a model.
            body["voxmesh"] = {
                "engines": {
                    stage: dataclasses.asdict(getattr(started, stage))
                    for stage in ("vad", "voxtral", "orpheus")
                }
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
    if value is None:
        return {"server_vad": False}
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
    if td.get("type") != "server_vad":
        raise unsupported(f"{param}.type", f"turn detection {td.get('type')!r} (only 'server_vad' or null)")
    for key in ("prefix_padding_ms", "silence_duration_ms", "idle_timeout_ms", "eagerness"):
        if td.get(key) is not None:
            raise unsupported(
                f"{param}.{key}", f"setting {key} per session (the vad service's own settings apply)"
            )
    for key in ("create_response", "interrupt_response"):
        if td.get(key, True) is not True:
            raise unsupported(
                f"{param}.{key}", f"{key}=false (the gateway always answers and always lets a user barge in)"
            )
    threshold = td.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0
    ):
        raise ProtocolError(
            f"threshold must be a number in 0..1, got {threshold!r}", param=f"{param}.threshold"
        )
    return {"server_vad": True, "vad_threshold": None if threshold is None else float(threshold)}
