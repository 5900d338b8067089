"""Voxtral prompts with mistral-common: conversation history → requests, token ids → text deltas.

Pure request building, no torch: the ``transformers`` engine tokenizes these
requests with the checkpoint's own ``tekken.json`` (``MistralTokenizer``),
which is also what vLLM does with ``tokenizer_mode=mistral``.

Two rules of the Voxtral tokenizers shape the chat:

- before tokenizer version 13 a system prompt may not sit beside audio
  (mistral-common refuses the request), so in ``audio`` mode on such a
  tokenizer the system prompt is folded into the first user message as text;
- an assistant message needs content, so a reply cut off before any of it
  was heard (barge-in) is left out; the user turns around it are then
  consecutive, which the tokenizer joins into one ``[INST]`` block.
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
    from mistral_common.protocol.instruct.messages import (
        AssistantMessage,
        SystemMessage,
        UserMessage,
    )
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.protocol.transcription.request import TranscriptionRequest
    from voxmesh.services.voxtral.engine import Message

#: Longest run of ids held back while they decode to an incomplete UTF-8 character.
_MAX_HELD_IDS = 8


def wav_bytes(audio: np.ndarray, sample_rate_hz: int = PIPELINE_SAMPLE_RATE_HZ) -> bytes:
    """16 kHz float32 mono → a WAV file in memory (what mistral-common's audio chunks carry)."""
    if audio.size == 0:
        raise InvalidArgument("audio.pcm", "empty utterance: there is no audio to answer")
    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(audio, dtype=np.float32), sample_rate_hz, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def chat_request(messages: Sequence[Message], *, system_beside_audio: bool) -> ChatCompletionRequest:
    """The mistral-common chat for a reply: system prompt, history, and the last user turn.

    The last message is the current user turn, as text (``stream`` mode,
    typed turns) or audio (``audio`` mode). ``system_beside_audio``: the
    tokenizer accepts a system prompt in a request with audio (version 13
    on); when it does not and the turn is audio, the system prompt becomes
    the first text of the first user message.
    """
    from mistral_common.protocol.instruct.chunk import AudioChunk, TextChunk
    from mistral_common.protocol.instruct.messages import (
        AssistantMessage,
        SystemMessage,
        UserMessage,
    )
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    if not messages or messages[-1].role != "user":
        raise ValueError("messages: the last message must be the user's turn")
    *history, last = messages
    system = "\n\n".join(m.text.strip() for m in history if m.role == "system" and m.text.strip())
    fold_system = bool(system) and last.audio is not None and not system_beside_audio

    out: list[SystemMessage | UserMessage | AssistantMessage] = []
    if system and not fold_system:
        out.append(SystemMessage(content=system))
    pending_system = system if fold_system else ""
    for message in history:
        text = message.text.strip()
        if message.role == "system" or not text:
            continue
        if message.role == "assistant":
            out.append(AssistantMessage(content=text))
        else:
            if pending_system:
                text, pending_system = f"{pending_system}\n\n{text}", ""
            out.append(UserMessage(content=text))
    if last.audio is not None:
        chunks: list[Any] = []  # UserMessage's own chunk union
        if pending_system:
            chunks.append(TextChunk(text=pending_system))
        chunks.append(AudioChunk(input_audio=wav_bytes(last.audio)))
        out.append(UserMessage(content=chunks))
    else:
        out.append(UserMessage(content=last.text.strip()))
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

    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self._decode = decode
        self._held: list[int] = []

    def push(self, ids: Sequence[int]) -> str:
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
