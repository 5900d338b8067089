"""A multi-turn conversation through a real voxtral session and model engine, in-process,
recording every prompt the engine hands its model.

Shared by the ``transformers`` (tests/integration) and ``vllm`` (tests/vllm)
tests: the session is the one the servicer builds from a ``RespondConfig``
(history budget included), the engine is started on a tiny random
checkpoint of the real architecture, and ``MistralPromptEngine._prompt`` —
the one step where a tokenized mistral-common request becomes the model's
input — is wrapped to keep the token ids. The prompts are decoded with
special tokens kept, so a test can read the chat exactly as the model does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voxmesh.audio import float_to_pcm16
from voxmesh.services.voxtral.mistral_engine import MistralPromptEngine
from voxmesh.services.voxtral.servicer import VoxtralServicer
from voxmesh.services.voxtral.settings import VoxtralSettings
from voxmesh.v1 import voxtral_pb2

#: What the 30 s audio window of a turn decodes to (375 [AUDIO] tokens), shortened for reading.
AUDIO = "<30 s of audio>"
AUDIO_WINDOW_TOKENS = 375
Request = voxtral_pb2.RespondRequest


@dataclass
class Conversation:
    events: list[voxtral_pb2.RespondResponse]
    #: Every prompt the engine gave its model, decoded with special tokens, in order.
    prompts: list[str] = field(default_factory=list)

    @property
    def reply_prompts(self) -> list[str]:
        """The chat prompts (transcription prompts, ending in ``[TRANSCRIBE]``, left out)."""
        return [p for p in self.prompts if not p.endswith("[TRANSCRIBE]")]

    def of_turn(self, turn_id: int, kind: str) -> list[Any]:
        return [
            getattr(e, kind)
            for e in self.events
            if e.WhichOneof("event") == kind and getattr(e, kind).turn_id == turn_id
        ]

    def transcript(self, turn_id: int) -> str:
        finals = [t.text for t in self.of_turn(turn_id, "transcript") if t.is_final]
        assert len(finals) == 1, f"turn {turn_id}: {len(finals)} final transcripts"
        return str(finals[0])

    def reply(self, turn_id: int) -> str:
        failed = self.of_turn(turn_id, "failed")
        assert self.of_turn(turn_id, "done"), f"turn {turn_id} was not answered: {failed}"
        return "".join(d.delta for d in self.of_turn(turn_id, "reply"))


def turn_requests(turn_id: int, audio: np.ndarray, piece_bytes: int = 6400) -> list[Request]:
    pcm = float_to_pcm16(audio)
    out = [
        Request(audio=voxtral_pb2.UtteranceAudio(turn_id=turn_id, pcm=pcm[i : i + piece_bytes]))
        for i in range(0, len(pcm), piece_bytes)
    ]
    return [*out, Request(end_of_turn=voxtral_pb2.EndOfTurn(turn_id=turn_id))]


async def converse(
    engine: MistralPromptEngine,
    settings: VoxtralSettings,
    config: voxtral_pb2.RespondConfig,
    utterances: Sequence[np.ndarray | str],
) -> Conversation:
    """One session on a started ``engine``: its events and the prompts its model received.

    ``utterances`` are turns 1, 2, …: audio, or typed text.
    """
    from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy

    conversation = Conversation(events=[])
    original = engine._prompt

    def spy(tokenized: Any, max_tokens: int, *, has_audio: bool) -> Any:
        text = engine.tokenizer.decode(list(tokenized.tokens), special_token_policy=SpecialTokenPolicy.KEEP)
        conversation.prompts.append(str(text).replace("[AUDIO]" * AUDIO_WINDOW_TOKENS, AUDIO))
        return original(tokenized, max_tokens, has_audio=has_audio)

    engine._prompt = spy  # type: ignore[method-assign]
    try:
        session = VoxtralServicer(engine, settings)._session(config)
        # As the gateway does, a turn is sent once the one before it has ended: the
        # stream caps its open turns (max_open_turns), and a conversation is sequential.
        ended: dict[int, asyncio.Event] = {}

        def turn_ended(turn_id: int) -> asyncio.Event:
            return ended.setdefault(turn_id, asyncio.Event())

        async def requests() -> AsyncIterator[Request]:
            for turn_id, utterance in enumerate(utterances, start=1):
                if turn_id > 1:
                    await turn_ended(turn_id - 1).wait()
                if isinstance(utterance, str):
                    yield Request(text=voxtral_pb2.TextTurn(turn_id=turn_id, text=utterance))
                    continue
                for request in turn_requests(turn_id, utterance):
                    yield request

        async for event in session.run(requests()):
            conversation.events.append(event)
            kind = event.WhichOneof("event")
            if kind in ("done", "failed"):
                turn_ended(getattr(event, kind).turn_id).set()
    finally:
        del engine._prompt  # type: ignore[method-assign]
    return conversation


def expected_prompt(history: Sequence[tuple[str, str]], current: str) -> str:
    """The v7 chat the model must read.

    Every earlier exchange in order, roles alternating
    (``[INST]user[/INST]assistant</s>``), then the current user turn.
    """
    earlier = "".join(f"[INST]{user}[/INST]{reply}</s>" for user, reply in history)
    return f"<s>{earlier}[INST]{current}[/INST]"


def assert_three_turn_prompts(conversation: Conversation, mode: int, instructions: str) -> None:
    """Each reply prompt holds every earlier exchange in order and the instructions once, placed
    as the model card places them (after the audio in audio mode, before the text otherwise);
    one transcription request per turn (in audio mode, made beside the reply).
    """
    from voxmesh.v1 import common_pb2

    exchanges = [(conversation.transcript(t), conversation.reply(t).strip()) for t in (1, 2, 3)]
    assert all(user for user, _ in exchanges), (
        f"the tiny model's transcripts are random text, never empty: {exchanges}"
    )
    prompts = conversation.reply_prompts
    assert len(prompts) == 3
    for turn, prompt in enumerate(prompts):
        if mode == common_pb2.TURN_MODE_AUDIO:
            current = f"[BEGIN_AUDIO]{AUDIO}{instructions}"
        else:
            current = f"{instructions}\n\n{exchanges[turn][0]}"
        assert prompt == expected_prompt(exchanges[:turn], current)
        assert prompt.count(instructions) == 1 and "[SYSTEM_PROMPT]" not in prompt
    assert len(conversation.prompts) == 6
