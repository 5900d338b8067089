"""The ``echo`` engine: the loop-back used when no Voxtral model is available.

It is not Voxtral and says so (``is_fallback``): pocketsphinx transcribes the
utterance (its English model ships in its wheel) while the user speaks, and
the reply repeats what it heard, streamed word by word like a model's
deltas. It lets the whole mesh run on a laptop with no GPU and no weights.

Tool calls are faked by a documented rule (services.voxtral.tools.ECHO_STAND_IN_RULE,
sent in EngineInfo.tool_calls): a transcript that names a declared tool calls
it with the transcript as its argument, and the reply after the results
repeats them, so the CPU mesh exercises the whole tool-call path.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator

import numpy as np

from voxmesh.audio import float_to_pcm16
from voxmesh.engine_info import EngineInfo
from voxmesh.services.voxtral.engine import Delta, LiveTranscriber, Message, ReplyEngine, Sampling
from voxmesh.services.voxtral.pocketsphinx_pool import DecoderWorkers
from voxmesh.services.voxtral.tools import (
    ECHO_STAND_IN_RULE,
    ToolOutcome,
    Tools,
    stand_in_calls,
    stand_in_reply,
)

#: What the echo says when pocketsphinx heard nothing it could spell.
NOTHING_HEARD = "Sorry, I did not catch that."


class _Transcriber(LiveTranscriber):
    """One utterance, decoded in a worker process; calls are awaited one at a time by the turn."""

    def __init__(self, workers: DecoderWorkers) -> None:
        self._workers = workers
        self._utterance = workers.new_utterance()
        self._text = ""

    async def feed(self, audio: np.ndarray) -> str | None:
        if not len(audio):
            return None  # pocketsphinx fails on an empty buffer
        text = await self._workers.feed(self._utterance, float_to_pcm16(audio))
        if text == self._text:
            return None
        self._text = text
        return text

    async def finish(self) -> str:
        text, self.last_word_confidence = await self._workers.finish(self._utterance)
        return text

    def close(self) -> None:
        self._workers.release(self._utterance)


class EchoEngine(ReplyEngine):
    #: pocketsphinx's wheel ships its English model only; the echo answers in English.
    reply_languages = frozenset({"en"})

    def __init__(self) -> None:
        # One decoding process per core but one (the event loop, vad and the
        # gateway need the rest); at least one. See pocketsphinx_pool.
        self._workers = DecoderWorkers(max(1, (os.cpu_count() or 2) - 1))

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(
            engine="echo", model="pocketsphinx en-us", is_fallback=True, tool_calls=ECHO_STAND_IN_RULE
        )

    async def start(self) -> None:
        # Start the workers and load a decoder in each before SERVING, so the
        # first turn does not pay ~0.6 s.
        await self._workers.warm()

    async def close(self) -> None:
        self._workers.close()

    def transcriber(self, language: str) -> LiveTranscriber:
        return _Transcriber(self._workers)

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 1

    async def generate(
        self, messages: list[Message], sampling: Sampling, tools: Tools | None = None
    ) -> AsyncIterator[Delta]:
        prompt_tokens = sum(self._prompt_tokens(m) for m in messages)
        if messages and messages[-1].role == "tool":
            # The calls were answered: say what the results say.
            outcomes: list[ToolOutcome] = []
            for message in reversed(messages):
                if message.role != "tool" or message.outcome is None:
                    break
                outcomes.insert(0, message.outcome)
            async for delta in self._speak(stand_in_reply(outcomes), sampling, prompt_tokens):
                yield delta
            return
        user = messages[-1]
        heard = user.text
        if user.audio is not None:
            transcriber = self.transcriber("en")
            try:
                await transcriber.feed(user.audio)
                heard = await transcriber.finish()
            finally:
                transcriber.close()
        heard = heard.strip()
        if not heard and user.audio is None:
            # A reply asked for with no user input (a greeting): the loop-back
            # repeats the instructions it was given for it, so they can be checked.
            told = next((m.text.strip() for m in reversed(messages) if m.role == "system"), "")
            reply = f"I was told: {told}" if told else NOTHING_HEARD
        else:
            reply = f"You said: {heard}." if heard else NOTHING_HEARD
        calls = stand_in_calls(heard, tools) if tools is not None and heard else []
        if calls:
            await asyncio.sleep(0)
            yield Delta(
                text="",
                finish_reason="tool_calls",
                prompt_tokens=prompt_tokens,
                generated_tokens=len(calls),
                tool_calls=tuple(calls),
            )
            return
        async for delta in self._speak(reply, sampling, prompt_tokens):
            yield delta

    def _prompt_tokens(self, message: Message) -> int:
        """Words of the message, its calls and its result: what a model would read."""
        calls = sum(self.count_tokens(f"{c.name} {c.arguments_json}") for c in message.tool_calls)
        result = self.count_tokens(message.outcome.content) if message.outcome is not None else 0
        return self.count_tokens(message.text) + calls + result

    async def _speak(self, reply: str, sampling: Sampling, prompt_tokens: int) -> AsyncIterator[Delta]:
        words = re.findall(r"\S+\s*", reply)[: sampling.max_tokens]
        for i, word in enumerate(words):
            # Yield to the loop between words, as a model streaming tokens would.
            await asyncio.sleep(0)
            last = i == len(words) - 1
            yield Delta(
                text=word,
                finish_reason=("stop" if len(words) < sampling.max_tokens else "length") if last else None,
                prompt_tokens=prompt_tokens if last else 0,
                generated_tokens=len(words) if last else 0,
            )
