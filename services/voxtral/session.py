"""One Respond stream: turns of audio or text in, transcripts and reply deltas out.

The *reader* applies requests as they arrive and never waits on a model: a
cancel is handled the moment it is read. Each turn runs in its own task,
started by its first message: it transcribes audio while it still streams
in (``stream``/``transcribe``), or gathers it (``audio``), then writes the
reply once the turn before it has finished (so history is in order).
Events go through one bounded output queue; events of a cancelled turn
still queued are dropped at the door.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import numpy as np
from opentelemetry import trace

from voxmesh import logs, tracing
from voxmesh.audio import PIPELINE_SAMPLE_RATE_HZ, pcm16_to_float
from voxmesh.errors import InvalidArgument, UtteranceTooLong, VoxmeshError
from voxmesh.metrics import REPLY_QUEUE_DEPTH, STAGE_LATENCY
from voxmesh.services.voxtral.engine import LiveTranscriber, Message, ReplyEngine, Sampling
from voxmesh.services.voxtral.history import History
from voxmesh.services.voxtral.settings import VoxtralSettings
from voxmesh.services.voxtral.tools import MAX_TOOL_ROUNDS, ToolCallOut, ToolOutcome, Tools
from voxmesh.turn_outcomes import ClosedTurns, turn_failed
from voxmesh.v1 import common_pb2, voxtral_pb2

log = logging.getLogger(__name__)
#: Made at import, so /metrics shows 0 from the start (the autoscaler's query needs a sample).
_REPLIES_WAITING = REPLY_QUEUE_DEPTH.labels("voxtral")
_tracer = tracing.tracer(__name__)

OUTPUT_QUEUE_SIZE = 64
#: Longest typed turn, in characters.
MAX_TEXT_CHARS = 8_000
#: ``TurnFailed.code`` of a ``stream``-mode utterance with no words: no reply; the session goes on.
NO_SPEECH = "NO_SPEECH"


class _Done:
    """Output-queue marker: every turn is finished, the stream can end."""


@dataclass
class Turn:
    turn_id: int
    #: Audio pieces (16 kHz float32) until None (end of turn).
    audio: asyncio.Queue[np.ndarray | None] = field(default_factory=asyncio.Queue)
    samples: int = 0
    text: str | None = None
    #: This turn's own instructions (EndOfTurn/TextTurn.instructions); "" = the session's.
    instructions: str = ""
    #: A TextTurn with reply_only: no user input, the assistant speaks first.
    reply_only: bool = False
    ended: bool = False
    transcript: str = ""
    reply: str = ""
    replying: bool = False
    trace_context: Mapping[str, str] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    started_at: float = field(default_factory=time.perf_counter)
    #: Calls of the reply still waiting for their ToolResults (by call id).
    pending_calls: dict[str, ToolCallOut] = field(default_factory=dict)
    #: The gateway's ToolResults for pending_calls, handed over by the reader.
    results: asyncio.Queue[list[ToolOutcome]] = field(default_factory=asyncio.Queue)
    #: Answered calls, in call order: what the history keeps of the turn's tools.
    outcomes: list[ToolOutcome] = field(default_factory=list)


class RespondSession:
    def __init__(
        self,
        engine: ReplyEngine,
        settings: VoxtralSettings,
        mode: int,
        language: str,
        history: History,
        tools: Tools | None = None,
    ) -> None:
        self.engine = engine
        #: The session's tools (RespondConfig.tools), offered on every reply.
        self.tools = tools or Tools()
        self.settings = settings
        self.mode = mode
        self.language = language
        self.history = history
        self.sampling = Sampling(settings.max_reply_tokens, settings.temperature, settings.top_p)
        self.max_samples = int(settings.max_utterance_s * PIPELINE_SAMPLE_RATE_HZ)
        self.out: asyncio.Queue[voxtral_pb2.RespondResponse | BaseException | _Done] = asyncio.Queue(
            OUTPUT_QUEUE_SIZE
        )
        self.turns: dict[int, Turn] = {}
        self.closed = ClosedTurns()
        self.last_turn_id = 0
        self._previous: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ run

    def idle(self) -> bool:
        """No turn open and nothing waiting to be sent: the stream can move to another replica."""
        return not self.turns and self.out.empty()

    async def run(
        self, requests: AsyncIterator[voxtral_pb2.RespondRequest]
    ) -> AsyncIterator[voxtral_pb2.RespondResponse]:
        reader = asyncio.create_task(self._read(requests), name="voxtral-reader")
        try:
            while True:
                item = await self.out.get()
                if isinstance(item, _Done):
                    break
                if isinstance(item, BaseException):
                    raise item
                kind = item.WhichOneof("event")
                if self.closed.get(getattr(item, kind).turn_id) != "cancelled":
                    yield item
        finally:
            reader.cancel()
            for turn in list(self.turns.values()):
                if turn.task is not None:
                    turn.task.cancel()
            tasks = [t.task for t in self.turns.values() if t.task is not None]
            await asyncio.gather(reader, *tasks, return_exceptions=True)

    # --------------------------------------------------------------- reader

    async def _read(self, requests: AsyncIterator[voxtral_pb2.RespondRequest]) -> None:
        try:
            async for request in requests:
                kind = request.WhichOneof("request")
                if kind == "audio":
                    self._on_audio(request.audio)
                elif kind == "end_of_turn":
                    self._on_end(
                        request.end_of_turn.turn_id,
                        request.end_of_turn.trace_context,
                        _instructions(request.end_of_turn.instructions, "end_of_turn.instructions"),
                    )
                elif kind == "text":
                    self._on_text(request.text)
                elif kind == "cancel":
                    self._on_cancel(request.cancel)
                elif kind == "tool_results":
                    self._on_tool_results(request.tool_results)
                elif kind == "config":
                    raise InvalidArgument("config", "sent twice: the config is the first message only")
                else:
                    raise InvalidArgument("request", "empty message: set audio, end_of_turn, text or cancel")
            # Half-close: finished turns are answered, unfinished ones never will be.
            for turn in list(self.turns.values()):
                if not turn.ended:
                    self._cancel(turn, "")
            tasks = [t.task for t in self.turns.values() if t.task is not None]
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.out.put(_Done())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self.out.put(exc)

    def _turn(self, turn_id: int, field_name: str) -> Turn | None:
        """The open turn with this id, a new one, or None if it was closed (late input)."""
        if turn_id == 0:
            raise InvalidArgument(field_name, "turn ids start at 1")
        if turn_id in self.turns:
            return self.turns[turn_id]
        if (outcome := self.closed.get(turn_id)) is not None:
            if outcome == "done":
                raise InvalidArgument(field_name, f"turn {turn_id} is already answered")
            return None
        if turn_id <= self.last_turn_id:
            raise InvalidArgument(field_name, f"turn {turn_id} is not newer than turn {self.last_turn_id}")
        if len(self.turns) >= self.settings.max_open_turns:
            # Each open turn holds up to max_utterance_s of audio: without a cap one
            # stream grew voxtral without limit (5 000 open turns: +177 MiB in 3.3 s).
            raise InvalidArgument(
                field_name,
                f"more than {self.settings.max_open_turns} turns open on this stream (max_open_turns)",
            )
        turn = Turn(turn_id)
        self.turns[turn_id] = turn
        self.last_turn_id = turn_id
        previous, self._previous = self._previous, None
        turn.task = asyncio.create_task(self._run_turn(turn, previous), name=f"voxtral-turn-{turn_id}")
        self._previous = turn.task
        return turn

    def _on_audio(self, audio: voxtral_pb2.UtteranceAudio) -> None:
        turn = self._turn(audio.turn_id, "audio.turn_id")
        if turn is None:
            return
        if turn.ended:
            raise InvalidArgument("audio.turn_id", f"turn {audio.turn_id} already ended")
        if turn.text is not None:
            raise InvalidArgument("audio.turn_id", f"turn {audio.turn_id} is a typed turn")
        samples = pcm16_to_float(audio.pcm, "audio.pcm")
        if not len(samples):
            return
        turn.samples += len(samples)
        if turn.samples > self.max_samples:
            self._fail(
                turn,
                UtteranceTooLong(
                    "audio.pcm",
                    f"the utterance is longer than {self.settings.max_utterance_s:g} s, the longest accepted",
                ),
            )
            return
        turn.audio.put_nowait(samples)

    def _on_end(self, turn_id: int, trace_context: Mapping[str, str], instructions: str = "") -> None:
        turn = self._turn(turn_id, "end_of_turn.turn_id")
        if turn is None:
            return
        if turn.ended:
            raise InvalidArgument("end_of_turn.turn_id", f"turn {turn_id} already ended")
        turn.ended = True
        turn.instructions = instructions
        turn.trace_context = dict(trace_context)
        turn.audio.put_nowait(None)

    def _on_text(self, text: voxtral_pb2.TextTurn) -> None:
        if text.reply_only and text.text:
            raise InvalidArgument("text.text", "must be empty with reply_only (a reply with no user input)")
        if not text.reply_only and not text.text.strip():
            raise InvalidArgument("text.text", "empty: a typed turn needs text (or reply_only)")
        instructions = _instructions(text.instructions, "text.instructions")
        if len(text.text) > MAX_TEXT_CHARS:
            raise InvalidArgument("text.text", f"{len(text.text)} characters exceeds {MAX_TEXT_CHARS}")
        if text.turn_id in self.turns:
            raise InvalidArgument("text.turn_id", f"turn {text.turn_id} is already open")
        turn = self._turn(text.turn_id, "text.turn_id")
        if turn is None:
            return
        turn.text = text.text
        turn.instructions = instructions
        turn.reply_only = text.reply_only
        turn.ended = True
        turn.trace_context = dict(text.trace_context)
        turn.audio.put_nowait(None)

    def _on_cancel(self, cancel: common_pb2.CancelTurn) -> None:
        turn = self.turns.get(cancel.turn_id)
        if cancel.discard:
            # A tentative reply the user spoke on past: as if it never happened.
            if turn is not None:
                self._cancel(turn, None)
            self.history.forget(cancel.turn_id)
        elif turn is not None:
            self._cancel(turn, cancel.spoken_text)
        elif self.closed.get(cancel.turn_id) == "done":
            # The reply was fully written but not fully heard: keep what was.
            self.history.amend(cancel.turn_id, cancel.spoken_text)
        elif cancel.turn_id > self.last_turn_id:
            self.last_turn_id = cancel.turn_id
            self.closed.remember(cancel.turn_id, "cancelled")

    def _on_tool_results(self, message: voxtral_pb2.ToolResults) -> None:
        turn = self.turns.get(message.turn_id)
        if turn is None:
            if self.closed.get(message.turn_id) is not None:
                return  # the turn was cancelled (barge-in) as the results crossed: dropped
            raise InvalidArgument("tool_results.turn_id", f"turn {message.turn_id} is not open")
        if not turn.pending_calls:
            raise InvalidArgument("tool_results.turn_id", f"turn {message.turn_id} has no calls waiting")
        answered = {r.call_id: r for r in message.results}
        if set(answered) != set(turn.pending_calls) or len(answered) != len(message.results):
            raise InvalidArgument(
                "tool_results.results",
                f"one result per waiting call of turn {message.turn_id} "
                f"({', '.join(sorted(turn.pending_calls))}), got {', '.join(r.call_id for r in message.results)}",
            )
        outcomes = [
            ToolOutcome(call, answered[call_id].output, answered[call_id].error)
            for call_id, call in turn.pending_calls.items()
        ]
        turn.pending_calls = {}
        turn.results.put_nowait(outcomes)

    # ---------------------------------------------------------------- turns

    async def _run_turn(self, turn: Turn, previous: asyncio.Task[None] | None) -> None:
        logs.turn_id_var.set(turn.turn_id)
        span: trace.Span = trace.INVALID_SPAN
        transcriber: LiveTranscriber | None = None
        try:
            user, transcriber = await self._listen(turn)
            span = _tracer.start_span(
                "voxtral.reply",
                context=tracing.extract(turn.trace_context),
                attributes={
                    "voxmesh.turn_id": turn.turn_id,
                    "voxmesh.transcript_chars": len(turn.transcript),
                },
            )
            if self.mode == common_pb2.TURN_MODE_TRANSCRIBE:
                await self._emit(
                    done=voxtral_pb2.ReplyDone(turn_id=turn.turn_id, finish_reason="transcribe_only")
                )
                self._close(turn, "done")
                return
            if user.audio is None and not user.text and not turn.reply_only:
                # A stream-mode utterance with no words (a cough, noise the VAD took for
                # speech): the model would get an empty [INST][/INST] and answer nothing.
                log.info("no speech in the utterance: no reply", extra=logs.fields(turn_id=turn.turn_id))
                await self._emit(
                    failed=common_pb2.TurnFailed(
                        turn_id=turn.turn_id,
                        code=NO_SPEECH,
                        message="no words were heard in the utterance, so there is no reply",
                        retryable=True,
                    )
                )
                self._close(turn, "failed")
                return
            if previous is not None:
                # wait(), not await: the previous turn's cancel must not cancel this one.
                await asyncio.wait([previous])
            await self._reply(turn, user, span, transcriber)
            self.history.record(turn.turn_id, turn.transcript, turn.reply, turn.outcomes)
            self._close(turn, "done")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._report_failure(turn, exc)
        finally:
            if transcriber is not None:
                transcriber.close()
            span.end()

    async def _listen(self, turn: Turn) -> tuple[Message, LiveTranscriber | None]:
        """Wait for the end of the turn, transcribing on the way (partials go to the client).

        ``stream``/``transcribe`` modes and typed turns: the user's message is
        the final transcript. ``audio`` mode: it is the utterance's audio, and
        the transcriber is handed back still open, to finish beside the reply
        (the history keeps what the user said as text).
        """
        if turn.reply_only:
            # Nothing was said: no transcript to send, the instructions and history are the prompt.
            return Message("user", text=""), None
        audio_turn = self.mode == common_pb2.TURN_MODE_AUDIO and turn.text is None
        utterance: list[np.ndarray] = []
        transcriber = self.engine.transcriber(self.language)
        try:
            ended = False
            while not ended:
                # Take everything queued: one decode call catches up when audio
                # arrived faster than it decodes. None (end of turn) is always last.
                pieces: list[np.ndarray | None] = [await turn.audio.get()]
                while not turn.audio.empty():
                    pieces.append(turn.audio.get_nowait())
                if pieces[-1] is None:
                    ended = True
                    pieces.pop()
                if not pieces:
                    continue
                audio: np.ndarray = np.concatenate(pieces)  # type: ignore[arg-type]
                if audio_turn:
                    utterance.append(audio)
                partial = await transcriber.feed(audio)
                if partial is not None:
                    turn.transcript = partial
                    await self._emit(
                        transcript=voxtral_pb2.TranscriptUpdate(turn_id=turn.turn_id, text=partial)
                    )
            if audio_turn:
                if not utterance:
                    # Nothing for the model to hear (the gateway always sends the utterance's pre-roll).
                    raise InvalidArgument(
                        "end_of_turn.turn_id", f"audio-mode turn {turn.turn_id} ended with no audio"
                    )
                user, open_transcriber = Message("user", audio=np.concatenate(utterance)), transcriber
                transcriber = None  # now the turn's to close
                return user, open_transcriber
            final = turn.text if turn.text is not None else await transcriber.finish()
            confidence = transcriber.last_word_confidence if turn.text is None else None
        finally:
            if transcriber is not None:
                transcriber.close()
        turn.transcript = final.strip()
        await self._emit(
            transcript=voxtral_pb2.TranscriptUpdate(
                turn_id=turn.turn_id,
                text=turn.transcript,
                is_final=True,
                last_word_confidence=confidence if turn.transcript else None,
            )
        )
        return Message("user", text=turn.transcript), None

    async def _reply(
        self, turn: Turn, user: Message, span: trace.Span, transcriber: LiveTranscriber | None
    ) -> None:
        """Write the reply; with an open ``transcriber`` (``audio`` mode) finish the transcript beside it.

        The transcript starts once the reply's first token is out (on a shared
        model it would otherwise delay the first token, which is what the user
        waits for) and its final ``TranscriptUpdate`` goes before ``ReplyDone``,
        so the turn's summary downstream carries it.
        """
        first_token = asyncio.Event()
        heard = (
            asyncio.create_task(self._finish_transcript(turn, transcriber, first_token))
            if transcriber is not None
            else None
        )
        try:
            done = await self._write_reply(turn, user, span, first_token)
            if heard is not None:
                await heard
            await self._emit(done=done)
        finally:
            first_token.set()
            if heard is not None and not heard.done():
                heard.cancel()
                await asyncio.gather(heard, return_exceptions=True)

    async def _finish_transcript(
        self, turn: Turn, transcriber: LiveTranscriber, first_token: asyncio.Event
    ) -> None:
        await first_token.wait()
        try:
            turn.transcript = (await transcriber.finish()).strip()
        except Exception as exc:
            # The reply stands; only the history loses this turn (History.record skips it
            # unless a partial transcript came). Logged, not raised: the user got an answer.
            log.warning(
                "audio-mode transcript failed: %s: %s",
                type(exc).__name__,
                exc,
                extra=logs.fields(turn_id=turn.turn_id),
            )
        await self._emit(
            transcript=voxtral_pb2.TranscriptUpdate(turn_id=turn.turn_id, text=turn.transcript, is_final=True)
        )

    async def _write_reply(
        self, turn: Turn, user: Message, span: trace.Span, first_token: asyncio.Event
    ) -> voxtral_pb2.ReplyDone:
        """Stream the reply's deltas; the ``ReplyDone`` to send once the turn is complete."""
        turn.replying = True
        asked = time.perf_counter()
        done = voxtral_pb2.ReplyDone(turn_id=turn.turn_id, finish_reason="stop")
        messages = self.history.messages(user, turn.instructions)
        tools = self.tools
        generated = 0
        _REPLIES_WAITING.inc()  # until the first token, or the end of a failed or cancelled reply
        try:
            for round_ in range(1, MAX_TOOL_ROUNDS + 2):
                calls: tuple[ToolCallOut, ...] = ()
                said = len(turn.reply)
                generation = self.engine.generate(messages, self.sampling, tools)
                async with contextlib.aclosing(generation) as deltas:
                    async for delta in deltas:
                        if not first_token.is_set():
                            first_token.set()
                            _REPLIES_WAITING.dec()
                            STAGE_LATENCY.labels("voxtral_first_token").observe(time.perf_counter() - asked)
                            span.add_event("first_token")
                        if delta.text:
                            turn.reply += delta.text
                            await self._emit(
                                reply=voxtral_pb2.ReplyDelta(turn_id=turn.turn_id, delta=delta.text)
                            )
                        if delta.finish_reason is not None:
                            calls = delta.tool_calls
                            generated += delta.generated_tokens
                            done = voxtral_pb2.ReplyDone(
                                turn_id=turn.turn_id,
                                finish_reason="stop" if calls else delta.finish_reason,
                                prompt_tokens=delta.prompt_tokens,
                                generated_tokens=generated,
                            )
                if not calls:
                    break
                # The calls go out whole, once the model finished them; the reply goes on from
                # their results (the gateway answers a call that never gets one with an error).
                outcomes = await self._call_tools(turn, calls)
                turn.outcomes += outcomes
                messages = [
                    *messages,
                    Message("assistant", turn.reply[said:], tool_calls=calls),
                    *(Message("tool", outcome=o) for o in outcomes),
                ]
                if round_ >= MAX_TOOL_ROUNDS:
                    tools = Tools(self.tools.specs, "none")  # the last round must speak
        finally:
            if not first_token.is_set():
                first_token.set()
                _REPLIES_WAITING.dec()
        log.info(
            "turn answered",
            extra=logs.fields(
                generated_tokens=done.generated_tokens,
                reply_ms=round(1000 * (time.perf_counter() - asked), 1),
            ),
        )
        return done

    async def _call_tools(self, turn: Turn, calls: tuple[ToolCallOut, ...]) -> list[ToolOutcome]:
        turn.pending_calls = {call.call_id: call for call in calls}
        # The wall clock (not perf_counter) so a client on this machine can time the hop
        # from the call's last token to its ToolCall (bench/tool_calls.py).
        log.info(
            "tool calls made",
            extra=logs.fields(turn_id=turn.turn_id, calls=len(calls), parsed_epoch_s=round(time.time(), 6)),
        )
        await self._emit(
            tool_calls=voxtral_pb2.ReplyToolCalls(
                turn_id=turn.turn_id,
                calls=[
                    voxtral_pb2.ReplyToolCall(call_id=c.call_id, name=c.name, arguments_json=c.arguments_json)
                    for c in calls
                ],
            )
        )
        return await turn.results.get()

    async def _emit(self, **event: object) -> None:
        await self.out.put(voxtral_pb2.RespondResponse(**event))  # type: ignore[arg-type]

    # -------------------------------------------------------------- closing

    def _cancel(self, turn: Turn, spoken_text: str | None) -> None:
        """Stop the turn; history keeps ``spoken_text`` of its reply (None: nothing at all)."""
        if turn.task is not None:
            turn.task.cancel()
        if turn.replying and spoken_text is not None:
            # Calls still waiting were cancelled with the turn: only answered ones are kept.
            self.history.record(turn.turn_id, turn.transcript, spoken_text, turn.outcomes)
        log.info("turn cancelled", extra=logs.fields(turn_id=turn.turn_id, replying=turn.replying))
        self._close(turn, "cancelled")

    def _fail(self, turn: Turn, exc: VoxmeshError) -> None:
        """Fail a turn from the reader (it must not wait on the output queue)."""
        if turn.task is not None:
            turn.task.cancel()
        turn.task = asyncio.create_task(self._report_failure(turn, exc))

    async def _report_failure(self, turn: Turn, exc: Exception) -> None:
        self._close(turn, "failed")
        await self._emit(failed=turn_failed(turn.turn_id, exc, log))

    def _close(self, turn: Turn, outcome: str) -> None:
        if self.turns.pop(turn.turn_id, None) is None:
            return
        self.closed.remember(turn.turn_id, outcome)


#: A turn's instructions: its own or the session's (8000 at most) and the session's
#: added context (8000 at most, separators included), as the gateway bounds them.
MAX_INSTRUCTIONS_CHARS = 16_384


def _instructions(text: str, field_name: str) -> str:
    if len(text) > MAX_INSTRUCTIONS_CHARS:
        raise InvalidArgument(field_name, f"{len(text)} characters exceeds {MAX_INSTRUCTIONS_CHARS}")
    return text
