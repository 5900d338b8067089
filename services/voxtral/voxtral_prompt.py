"""Voxtral prompts with mistral-common: conversation history → requests, token ids → text deltas.

Pure request building, no torch: the ``transformers`` engine tokenizes these
requests with the checkpoint's own ``tekken.json`` (``MistralTokenizer``),
which is also what vLLM does with ``tokenizer_mode=mistral``.

Three rules shape the chat:

- **Instructions ride on the current user turn, every turn.** Voxtral 2507's
  model card says "System prompts are not yet supported", and mistral-common
  refuses a ``SystemMessage`` beside audio for tokenizers before version 13
  (Voxtral 2507's is v7); the ``[SYSTEM_PROMPT]`` block that tokenizer can
  write for a text-only chat is not what the card documents. So the session's
  instructions go into the last user message, where they are in force for
  the reply being written, and nowhere else (the history holds what was
  said, not the instructions again). Their place follows the documented
  examples: after the audio in an audio turn (the model card's examples put
  the ``AudioChunk`` first and a ``TextChunk`` after it, and mistral-common's
  encoder for tokenizers with no system role asserts rather than write a
  system prompt before an audio chunk), and before the text in a text turn
  (where that same encoder puts it: the system prompt, a blank line, then the
  last user message's text).
- **History is text.** Past user turns are their transcripts (in ``audio``
  mode too: the session transcribes each turn's audio beside the reply), so
  only the current turn carries audio and the roles alternate.
- An assistant message needs content, so a reply cut off before any of it
  was heard (barge-in) is left out; the user turns around it are then
  consecutive, which the tokenizer joins into one ``[INST]`` block.
- **Tools are mistral-common's** (services.voxtral.tools): the request's
  ``tools``/``tool_choice`` make ``[AVAILABLE_TOOLS]`` where the tokenizer
  version puts it (before the last user turn); an assistant's calls are an
  ``AssistantMessage`` with ``tool_calls`` (its words before them are not
  repeated: v7 has no place for both) followed by one ``ToolMessage`` per
  call. A reply going on from its calls' results ends in those tool
  messages, after the current user turn.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf

from voxmesh.audio import PIPELINE_SAMPLE_RATE_HZ
from voxmesh.errors import InvalidArgument

if TYPE_CHECKING:
    from mistral_common.protocol.instruct.messages import AssistantMessage, UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.protocol.transcription.request import TranscriptionRequest

    from voxmesh.services.voxtral.engine import Message
    from voxmesh.services.voxtral.tools import Tools

#: The user turn of a reply asked for with no user input and no instructions.
NO_INPUT_NUDGE = "(The user is listening and has said nothing yet. Go on.)"
#: Longest run of ids held back while they decode to an incomplete UTF-8 character.
_MAX_HELD_IDS = 8


def wav_bytes(audio: np.ndarray, sample_rate_hz: int = PIPELINE_SAMPLE_RATE_HZ) -> bytes:
    """16 kHz float32 mono → a WAV file in memory (what mistral-common's audio chunks carry)."""
    if audio.size == 0:
        raise InvalidArgument("audio.pcm", "empty utterance: there is no audio to answer")
    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(audio, dtype=np.float32), sample_rate_hz, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def chat_request(messages: Sequence[Message], tools: Tools | None = None) -> ChatCompletionRequest:
    """The mistral-common chat for a reply: history, then the current user turn with the instructions.

    The last user message is the current turn, as text (``stream`` mode,
    typed turns) or audio (``audio`` mode); after it come only the reply's
    own calls and their results, when it goes on from them. ``system``
    messages anywhere are the session's instructions, placed in that turn
    (see the module's rules). ``tools``: offered to the model, as the
    tokenizer version encodes them.
    """
    from mistral_common.protocol.instruct.chunk import AudioChunk, TextChunk
    from mistral_common.protocol.instruct.messages import AssistantMessage, ToolMessage, UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    from voxmesh.services.voxtral.tools import mistral_call, mistral_tools

    current = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    after_current = messages[current + 1 :] if current >= 0 else []
    if (
        current < 0
        or any(not (m.role == "tool" or (m.role == "assistant" and m.tool_calls)) for m in after_current)
        or (after_current and after_current[-1].role != "tool")
    ):
        raise ValueError(
            "messages: the last message must be the user's turn, or the results of its reply's calls"
        )
    history, last, after = messages[:current], messages[current], messages[current + 1 :]
    instructions = "\n\n".join(m.text.strip() for m in messages if m.role == "system" and m.text.strip())

    def converted(message: Message) -> UserMessage | AssistantMessage | ToolMessage | None:
        text = message.text.strip()
        if message.role == "tool" and message.outcome is not None:
            outcome = message.outcome
            return ToolMessage(
                content=outcome.content, tool_call_id=outcome.call.call_id, name=outcome.call.name
            )
        if message.role == "assistant" and message.tool_calls:
            return AssistantMessage(tool_calls=[mistral_call(c) for c in message.tool_calls])
        if message.role == "system" or not text:
            return None
        return AssistantMessage(content=text) if message.role == "assistant" else UserMessage(content=text)

    out: list[UserMessage | AssistantMessage | ToolMessage] = [
        m for m in map(converted, history) if m is not None
    ]
    if last.audio is not None:
        chunks: list[Any] = [AudioChunk(input_audio=wav_bytes(last.audio))]  # UserMessage's own chunk union
        if instructions:
            chunks.append(TextChunk(text=instructions))
        out.append(UserMessage(content=chunks))
    else:
        # An empty text is a reply asked for with no user input (a greeting): the
        # instructions alone are the turn, or a neutral nudge when there are none.
        text = "\n\n".join(part for part in (instructions, last.text.strip()) if part)
        out.append(UserMessage(content=text or NO_INPUT_NUDGE))
    out += [m for m in map(converted, after) if m is not None]
    if tools is not None and tools.specs:
        declared, choice = mistral_tools(tools)
        return ChatCompletionRequest(messages=out, tools=declared, tool_choice=choice)
    return ChatCompletionRequest(messages=out)


def transcription_request(audio: np.ndarray, language: str | None) -> TranscriptionRequest:
    """Voxtral's transcription prompt (``[TRANSCRIBE]``) for one utterance; ``language``: ISO 639-1 or None."""
    from mistral_common.protocol.transcription.request import TranscriptionRequest

    return TranscriptionRequest.model_validate({"audio": wav_bytes(audio), "language": language or None})


class TextDeltas:
    """Token ids in, text out as soon as it is whole: one delta per sampled token where possible.

    Byte-level tokens may split a UTF-8 character; those ids are held back
    until the character is complete (or ``_MAX_HELD_IDS`` of them pile up,
    which only a model emitting invalid UTF-8 does). ``decode`` turns ids
    into text, dropping special tokens.
    """

    def __init__(self, decode: Callable[[list[int]], str], tool_calls_id: int | None = None) -> None:
        self._decode = decode
        self._held: list[int] = []
        #: ``[TOOL_CALLS]``'s id: from it on the ids are a call, kept whole for
        #: mistral-common's parser (services.voxtral.tools) and never spoken.
        self._tool_calls_id = tool_calls_id
        self.tool_ids: list[int] = []

    def push(self, ids: Sequence[int]) -> str:
        if self.tool_ids or (self._tool_calls_id is not None and self._tool_calls_id in ids):
            at = 0 if self.tool_ids else list(ids).index(self._tool_calls_id)  # type: ignore[arg-type]
            self.tool_ids.extend(ids[at:])
            ids = ids[:at]
            if not ids:
                return ""
        self._held.extend(ids)
        text = self._decode(self._held)
        if text.endswith("\ufffd") and len(self._held) < _MAX_HELD_IDS:
            return ""
        self._held = []
        return text

    def flush(self) -> str:
        """Whatever is still held (the reply ended inside a character)."""
        text = self._decode(self._held) if self._held else ""
        self._held = []
        return text
