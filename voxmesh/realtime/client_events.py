"""The fields of ``conversation.item.create`` and ``response.create``, checked into plain values.

What the connection does with them (a turn, context, a reply) is
connection.py's; here only their shape, each refusal naming its field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voxmesh.realtime.protocol_error import ProtocolError, unsupported

#: Message roles taken as context for the assistant rather than as a turn
#: (Pipecat sends appended context as system items, and assistant ones as such).
CONTEXT_ROLES = {"system": "{}", "assistant": "Earlier in this conversation you said: {}"}
#: Content part types that carry text in a system or assistant item.
_TEXT_PARTS = {"input_text", "output_text", "text"}
#: The gateway's bound on instructions, a turn's own and all context together
#: (conversation.proto): checked at the edge, because over it the gateway ends the whole stream.
MAX_INSTRUCTIONS_CHARS = 8_000
#: OpenAI's limits on response.metadata: 16 pairs, keys up to 64 characters, values up to 512.
_METADATA_MAX = (16, 64, 512)
_RESPONSE_FIELDS = {
    "output_modalities",
    "tools",
    "input",
    "instructions",
    "audio",
    "prompt",
    "max_output_tokens",
    "tool_choice",
    "conversation",
    "metadata",
}


@dataclass(frozen=True)
class MessageItem:
    """A text message item: ``id`` is the client's, or None for the edge to name."""

    role: str
    text: str
    id: str | None


@dataclass(frozen=True)
class ResponseParams:
    """What a response.create asks for that voxmesh serves."""

    instructions: str | None
    metadata: dict[str, str] | None


def message_item(item: Any) -> MessageItem:
    """``conversation.item.create``'s item: a user, system or assistant text message."""
    if not isinstance(item, dict):
        raise ProtocolError("item must be an object", param="item")
    if item.get("type", "message") != "message":
        raise unsupported("item.type", f"{item.get('type')!r} items (only messages)")
    role = item.get("role")
    if not isinstance(role, str) or (role != "user" and role not in CONTEXT_ROLES):
        raise ProtocolError(
            f"item.role must be 'user', 'system' or 'assistant', got {role!r}", param="item.role"
        )
    content = item.get("content")
    if not isinstance(content, list) or not content:
        raise ProtocolError("item.content must be a non-empty list", param="item.content")
    kinds = {"input_text"} if role == "user" else _TEXT_PARTS
    texts = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else part
        if not isinstance(kind, str) or kind not in kinds:
            raise unsupported(f"item.content[{i}].type", f"{kind!r} content (only {sorted(kinds)})")
        text = part.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ProtocolError("text must be a non-empty string", param=f"item.content[{i}].text")
        texts.append(text)
    given = item.get("id")
    return MessageItem(role, "\n".join(texts), given if isinstance(given, str) and given else None)


def response_params(params: Any) -> ResponseParams:
    """``response.create``'s response object; what voxmesh cannot serve is refused by name."""
    params = params or {}
    if not isinstance(params, dict):
        raise ProtocolError("response must be an object", param="response")
    for key, value in params.items():
        param = f"response.{key}"
        if key not in _RESPONSE_FIELDS:
            raise ProtocolError(f"unknown parameter {key!r}", param=param, code="unknown_parameter")
        if key == "output_modalities" and value not in (None, ["audio"]):
            raise unsupported(param, f"{value!r} (only ['audio'])")
        if key in ("tools", "input") and value not in (None, []):
            raise unsupported(param, key)
        if key == "tool_choice" and value not in (None, "auto", "none"):
            raise unsupported(param, f"tool_choice {value!r}")
        if key in ("audio", "prompt") and value is not None:
            raise unsupported(param, f"per-response {key} (set it with session.update)")
        if key == "max_output_tokens" and value not in (None, "inf"):
            raise unsupported(param, "a reply length cap (only 'inf')")
        if key == "conversation" and value not in (None, "auto"):
            raise unsupported(param, f"conversation {value!r} (only 'auto')")
    instructions = params.get("instructions")
    if instructions is not None and (
        not isinstance(instructions, str) or len(instructions) > MAX_INSTRUCTIONS_CHARS
    ):
        raise ProtocolError(
            f"instructions must be a string of at most {MAX_INSTRUCTIONS_CHARS} characters",
            param="response.instructions",
        )
    return ResponseParams(instructions or None, _metadata(params.get("metadata")))


def _metadata(value: Any) -> dict[str, str] | None:
    """response.metadata, echoed on response.created/done (LiveKit's generate_reply waits for
    its ``client_event_id`` there); OpenAI's shape: string keys and values, within its limits.
    """
    if value is None:
        return None
    pairs, key_chars, value_chars = _METADATA_MAX
    if not isinstance(value, dict) or len(value) > pairs:
        raise ProtocolError(
            f"metadata must be an object of at most {pairs} string pairs", param="response.metadata"
        )
    for key, item in value.items():
        if not isinstance(item, str) or len(key) > key_chars or len(item) > value_chars:
            raise ProtocolError(
                f"metadata keys are strings of at most {key_chars} characters and values of at most {value_chars}",
                param=f"response.metadata.{key}",
            )
    return dict(value)
