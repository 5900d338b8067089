"""Builders of the GA Realtime server events voxmesh sends, and the ids they carry.

Names and fields follow the ``openai`` package's ``types/realtime`` models
(e.g. ``response.output_audio.delta``, not the beta's ``response.audio.delta``).
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field
from typing import Any

from voxmesh.client import TurnLatency


class Ids:
    """``event_…``, ``item_…``, ``resp_…`` ids, unique within the process (OpenAI's style)."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)

    def new(self, kind: str) -> str:
        return f"{kind}_{self._prefix}{next(self._counter):06d}"


@dataclass
class Response:
    """One assistant reply: a response with one audio output item."""

    id: str
    item_id: str
    user_item_id: str | None
    turn_id: int | None = None
    transcript: str = ""
    item_added: bool = False
    #: Why it is being cancelled, once a cancel was asked for: client_cancelled or turn_detected.
    cancel_reason: str = "turn_detected"
    #: response.create's metadata, echoed on response.created and response.done (as OpenAI does).
    metadata: dict[str, str] | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    #: The reply's function_call items, in call order (voxmesh.realtime.function_calls).
    function_calls: list[dict[str, Any]] = field(default_factory=list)

    def item(self, status: str) -> dict[str, Any]:
        content = [{"type": "output_audio", "transcript": self.transcript}] if status != "in_progress" else []
        return {
            "id": self.item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "assistant",
            "status": status,
            "content": content,
        }

    def body(self, status: str, status_details: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "object": "realtime.response",
            "id": self.id,
            "status": status,
            "status_details": status_details,
            "output": (
                [self.item("completed" if status == "completed" else "incomplete")]
                if self.item_added and status != "in_progress"
                else []
            )
            + (self.function_calls if status != "in_progress" else []),
            "output_modalities": ["audio"],
            "conversation_id": "auto",
            "metadata": self.metadata,
            "usage": None,
            **self.extras,
        }


def user_audio_item(item_id: str, transcript: str | None = None) -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "role": "user",
        "status": "completed",
        "content": [{"type": "input_audio", "transcript": transcript}],
    }


def user_text_item(item_id: str, text: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "role": "user",
        "status": "completed",
        "content": [{"type": "input_text", "text": text}],
    }


def context_item(item_id: str, role: str, text: str) -> dict[str, Any]:
    """A system (or assistant) message item the client added as context."""
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "role": role,
        "status": "completed",
        "content": [{"type": "input_text" if role == "system" else "output_text", "text": text}],
    }


def latency_ms(latency: TurnLatency) -> dict[str, float]:
    """The gateway's per-turn figures (DESIGN.md's terms), rounded to 0.1 ms."""
    return {name: round(value, 1) for name, value in vars(latency).items()}


def part_events(response: Response, output_index: int = 0) -> dict[str, Any]:
    """The fields every response.output_audio* and content_part event shares."""
    return {
        "response_id": response.id,
        "item_id": response.item_id,
        "output_index": output_index,
        "content_index": 0,
    }
