"""One Synthesize stream: turns of text in, phrase events and PCM out.

Two tasks per stream, both owned by :meth:`SynthesisSession.run`:

- the *reader* applies requests as they arrive: text deltas go through the
  turn's :class:`PhraseSplitter` and complete phrases are queued at once, so
  the first phrase is spoken while the LLM is still writing the rest; a
  cancel is handled as soon as it is read, never behind queued text;
- the *speaker* speaks turns in the order they began, phrase by phrase, each
  turn in its own task so that a cancel stops it mid-phrase. The next phrase
  is started as soon as the one playing has its first chunk out, so it is
  ready when that one ends (a phrase boundary costs no silence at 1.0×
  real time); at most two phrases of a turn are under way at once.

Both put events on one bounded output queue that the gRPC generator drains;
when it is full the speaker waits (the client reads slower than audio is
made), while the reader never blocks on it except to report an error.
Events of a cancelled turn still in that queue are dropped at the door.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from opentelemetry import trace

from voxmesh import logs, tracing
from voxmesh.audio import StreamResampler, float_to_pcm16
from voxmesh.errors import InvalidArgument, VoxmeshError
from voxmesh.metrics import SYNTHESIS_RTF
from voxmesh.services.orpheus.engine import SpeechEngine
from voxmesh.services.orpheus.phrase_audio import PhraseAudio
from voxmesh.services.orpheus.phrases import PhraseSplitter
from voxmesh.services.orpheus.settings import OrpheusSettings
from voxmesh.turn_outcomes import ClosedTurns, turn_failed
from voxmesh.v1 import common_pb2, orpheus_pb2

log = logging.getLogger(__name__)
_tracer = tracing.tracer(__name__)

#: Events waiting for the client; a full queue pauses the speaker.
OUTPUT_QUEUE_SIZE = 64
#: Largest text delta accepted, in characters.
MAX_DELTA_CHARS = 4_096


class _SpeakerDone:
    """Output-queue marker: every turn has been spoken, the stream can end."""


@dataclass
class Turn:
    """One reply's text and its progress through synthesis."""

    turn_id: int
    splitter: PhraseSplitter
    #: Phrases cut and not yet spoken; then None (end of text) or the error
    #: that ended the turn. The bound is never reached: every phrase consumes
    #: at least two characters of the turn's text, capped at ``max_turn_chars``.
    phrases: asyncio.Queue[str | VoxmeshError | None]
    span: trace.Span
    chars: int = 0
    text_ended: bool = False
    cancelled: bool = False
    task: asyncio.Task[None] | None = None
    started_at: float = field(default_factory=time.perf_counter)

    def end_span(self, outcome: str) -> None:
        if self.span.is_recording():
            self.span.set_attribute("voxmesh.outcome", outcome)
        self.span.end()


class SynthesisSession:
    """The state of one stream after its config: voice, output rate and turns."""

    def __init__(
        self, engine: SpeechEngine, voice: str, sample_rate_hz: int, settings: OrpheusSettings
    ) -> None:
        self.engine = engine
        self.voice = voice
        self.sample_rate_hz = sample_rate_hz
        self.settings = settings
        self.out: asyncio.Queue[orpheus_pb2.SynthesizeResponse | BaseException | _SpeakerDone] = (
            asyncio.Queue(OUTPUT_QUEUE_SIZE)
        )
        #: Turns with text still arriving or waiting to be spoken, by id.
        self.turns: dict[int, Turn] = {}
        #: Turns to speak, in the order they began; None closes the speaker.
        self.order: asyncio.Queue[Turn | None] = asyncio.Queue(settings.max_queued_turns + 2)
        #: Recently closed turn ids → "done", "cancelled" or "failed".
        self.closed = ClosedTurns()
        self.last_turn_id = -1

    # ------------------------------------------------------------------ run

    def idle(self) -> bool:
        """No turn open and nothing waiting to be sent: the stream can move to another replica."""
        return not self.turns and self.out.empty()

    async def run(
        self, requests: AsyncIterator[orpheus_pb2.SynthesizeRequest]
    ) -> AsyncIterator[orpheus_pb2.SynthesizeResponse]:
        """Yield events until the client half-closes and every turn is spoken."""
        reader = asyncio.create_task(self._read(requests), name="orpheus-reader")
        speaker = asyncio.create_task(self._speak(), name="orpheus-speaker")
        try:
            while True:
                item = await self.out.get()
                if isinstance(item, _SpeakerDone):
                    break
                if isinstance(item, BaseException):
                    raise item
                if self._is_live(item):
                    yield item
        finally:
            for task in (reader, speaker):
                task.cancel()
            await asyncio.gather(reader, speaker, return_exceptions=True)
            for turn in list(self.turns.values()):
                self._close(turn, "cancelled")

    def _is_live(self, event: orpheus_pb2.SynthesizeResponse) -> bool:
        kind = event.WhichOneof("event")
        turn_id: int = getattr(event, kind).turn_id
        return self.closed.get(turn_id) != "cancelled"

    # --------------------------------------------------------------- reader

    async def _read(self, requests: AsyncIterator[orpheus_pb2.SynthesizeRequest]) -> None:
        try:
            async for request in requests:
                kind = request.WhichOneof("request")
                if kind == "text":
                    self._on_text(request.text)
                elif kind == "end_of_text":
                    self._on_end_of_text(request.end_of_text.turn_id)
                elif kind == "cancel":
                    self._on_cancel(request.cancel)
                elif kind == "config":
                    raise InvalidArgument("config", "sent twice: the config is the first message only")
                else:
                    raise InvalidArgument("request", "empty message: set config, text, end_of_text or cancel")
            # Half-close: turns whose text is complete are still spoken;
            # turns still waiting for text never will get it.
            for turn in list(self.turns.values()):
                if not turn.text_ended:
                    self._cancel(turn)
            await self.order.put(None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self.out.put(exc)

    def _open_turn(self, turn_id: int, trace_context: Mapping[str, str], field_name: str) -> Turn:
        turn = self.turns.get(turn_id)
        if turn is not None:
            return turn
        if turn_id <= self.last_turn_id:
            raise InvalidArgument(field_name, f"turn {turn_id} is not newer than turn {self.last_turn_id}")
        if self.order.qsize() >= self.settings.max_queued_turns:
            raise InvalidArgument(
                field_name, f"more than {self.settings.max_queued_turns} turns waiting to be spoken"
            )
        span = _tracer.start_span(
            "orpheus.turn",
            context=tracing.extract(trace_context),
            attributes={"voxmesh.turn_id": turn_id, "voxmesh.voice": self.voice},
        )
        max_chars = self.settings.max_turn_chars
        turn = Turn(
            turn_id=turn_id,
            splitter=PhraseSplitter(
                self.settings.first_clause_chars, self.settings.clause_chars, self.settings.max_phrase_chars
            ),
            phrases=asyncio.Queue(max_chars // 2 + 2),
            span=span,
        )
        self.turns[turn_id] = turn
        self.last_turn_id = turn_id
        self.order.put_nowait(turn)
        return turn

    def _on_text(self, delta: orpheus_pb2.TextDelta) -> None:
        if self._ignored(delta.turn_id, "text.turn_id"):
            return
        if len(delta.text) > MAX_DELTA_CHARS:
            raise InvalidArgument("text.text", f"{len(delta.text)} characters exceeds {MAX_DELTA_CHARS}")
        turn = self._open_turn(delta.turn_id, delta.trace_context, "text.turn_id")
        if turn.text_ended:
            raise InvalidArgument("text.turn_id", f"turn {delta.turn_id} already got its end_of_text")
        turn.chars += len(delta.text)
        if turn.chars > self.settings.max_turn_chars:
            # The phrases already cut are spoken, then the turn fails in order.
            limit = self.settings.max_turn_chars
            turn.phrases.put_nowait(InvalidArgument("text.text", f"the turn exceeds {limit} characters"))
            self._close(turn, "failed")
            return
        for phrase in turn.splitter.feed(delta.text):
            turn.phrases.put_nowait(phrase)

    def _on_end_of_text(self, turn_id: int) -> None:
        if self._ignored(turn_id, "end_of_text.turn_id"):
            return
        turn = self._open_turn(turn_id, {}, "end_of_text.turn_id")
        if turn.text_ended:
            raise InvalidArgument("end_of_text.turn_id", f"turn {turn_id} already got its end_of_text")
        turn.text_ended = True
        for phrase in turn.splitter.flush():
            turn.phrases.put_nowait(phrase)
        turn.phrases.put_nowait(None)

    def _on_cancel(self, cancel: common_pb2.CancelTurn) -> None:
        turn = self.turns.get(cancel.turn_id)
        if turn is not None:
            self._cancel(turn)
        elif cancel.turn_id > self.last_turn_id:
            # Cancelled before its first text arrived: remember, so late text is ignored.
            self.last_turn_id = cancel.turn_id
            self.closed.remember(cancel.turn_id, "cancelled")

    def _ignored(self, turn_id: int, field_name: str) -> bool:
        """True for input to a cancelled or failed turn (it may cross the cancel in flight)."""
        state = self.closed.get(turn_id)
        if state == "done":
            raise InvalidArgument(field_name, f"turn {turn_id} is already spoken")
        return state is not None

    # -------------------------------------------------------------- speaker

    async def _speak(self) -> None:
        try:
            while (turn := await self.order.get()) is not None:
                if turn.cancelled:
                    continue
                turn.task = asyncio.create_task(self._speak_turn(turn), name=f"orpheus-turn-{turn.turn_id}")
                try:
                    # wait(), not await: a cancelled turn must not cancel the speaker.
                    await asyncio.wait([turn.task])
                finally:
                    if not turn.task.done():
                        turn.task.cancel()
                        await asyncio.gather(turn.task, return_exceptions=True)
            await self.out.put(_SpeakerDone())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self.out.put(exc)

    async def _speak_turn(self, turn: Turn) -> None:
        logs.turn_id_var.set(turn.turn_id)
        samples_out = 0
        first_audio: float | None = None
        index = 0
        # Phrases started ahead of the one playing, in order, then None or the
        # turn's error. The gate lets the starter begin one phrase per phrase
        # played, once that one's first chunk is out: the first phrase's time
        # to first audio is never shared with the second, and at most two
        # phrases are under way.
        upcoming: asyncio.Queue[PhraseAudio | Exception | None] = asyncio.Queue()
        may_start = asyncio.Event()
        may_start.set()
        starter = asyncio.create_task(
            self._start_phrases(turn, upcoming, may_start), name=f"orpheus-phrases-{turn.turn_id}"
        )
        audio: PhraseAudio | None = None
        try:
            while (item := await upcoming.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                audio, index = item, item.index
                await self._emit(
                    phrase_started=orpheus_pb2.PhraseStarted(
                        turn_id=turn.turn_id, phrase_index=index, text=audio.text
                    )
                )
                resampler = StreamResampler(self.engine.sample_rate_hz, self.sample_rate_hz)
                next_started = False
                async for chunk in audio.chunks():
                    samples_out += await self._emit_audio(turn.turn_id, index, resampler.process(chunk))
                    if first_audio is None and samples_out:
                        first_audio = time.perf_counter()
                    if not next_started:
                        next_started = True
                        may_start.set()
                if not next_started:
                    may_start.set()  # a phrase that made no audio at all
                samples_out += await self._emit_audio(turn.turn_id, index, resampler.flush())
                if audio.native_samples and audio.finished_at is not None:
                    SYNTHESIS_RTF.labels(self.engine.info.engine).observe(
                        (audio.finished_at - audio.started_at)
                        * self.engine.sample_rate_hz
                        / audio.native_samples
                    )
                await self._emit(
                    phrase_done=orpheus_pb2.PhraseDone(
                        turn_id=turn.turn_id, phrase_index=index, text=audio.text
                    )
                )
                await audio.close()
                audio = None
                index += 1
        except Exception as exc:
            await self._stop_phrases(starter, audio, upcoming)
            await self._fail(turn, exc, index)
            return
        finally:
            await self._stop_phrases(starter, audio, upcoming)
        audio_ms = round(1000 * samples_out / self.sample_rate_hz)
        await self._emit(done=orpheus_pb2.SynthesisDone(turn_id=turn.turn_id, audio_ms=audio_ms))
        log.info(
            "turn spoken",
            extra=logs.fields(
                phrases=index,
                audio_ms=audio_ms,
                first_audio_ms=None
                if first_audio is None
                else round(1000 * (first_audio - turn.started_at), 1),
            ),
        )
        self._close(turn, "done")

    async def _start_phrases(
        self,
        turn: Turn,
        upcoming: asyncio.Queue[PhraseAudio | Exception | None],
        may_start: asyncio.Event,
    ) -> None:
        """Start each phrase of the turn as the gate opens; end with None or the turn's error."""
        index = 0
        try:
            while isinstance(phrase := await turn.phrases.get(), str):
                await may_start.wait()
                may_start.clear()
                chunks = self.engine.synthesize(phrase, self.voice, first_in_turn=index == 0)
                name = f"orpheus-phrase-{turn.turn_id}-{index}"
                upcoming.put_nowait(PhraseAudio(phrase, index, chunks, name))
                index += 1
        except Exception as exc:
            # Never left unsaid: the speaker waits on this queue.
            upcoming.put_nowait(exc)
            return
        upcoming.put_nowait(phrase)

    @staticmethod
    async def _stop_phrases(
        starter: asyncio.Task[None],
        playing: PhraseAudio | None,
        upcoming: asyncio.Queue[PhraseAudio | Exception | None],
    ) -> None:
        """Stop the starter and every phrase still under way (safe to run twice)."""
        starter.cancel()
        await asyncio.gather(starter, return_exceptions=True)
        if playing is not None:
            await playing.close()
        while not upcoming.empty():
            if isinstance(item := upcoming.get_nowait(), PhraseAudio):
                await item.close()

    async def _emit(self, **event: object) -> None:
        await self.out.put(orpheus_pb2.SynthesizeResponse(**event))  # type: ignore[arg-type]

    async def _emit_audio(self, turn_id: int, index: int, samples: object) -> int:
        pcm = float_to_pcm16(samples)  # type: ignore[arg-type]
        if not pcm:
            return 0
        await self._emit(
            audio=orpheus_pb2.PcmChunk(
                turn_id=turn_id, phrase_index=index, pcm=pcm, sample_rate_hz=self.sample_rate_hz
            )
        )
        return len(pcm) // 2

    # ------------------------------------------------------------ closing

    def _cancel(self, turn: Turn) -> None:
        turn.cancelled = True
        if turn.task is not None:
            turn.task.cancel()
        log.info("turn cancelled", extra=logs.fields(turn_id=turn.turn_id))
        self._close(turn, "cancelled")

    async def _fail(self, turn: Turn, exc: Exception, index: int) -> None:
        self._close(turn, "failed")
        await self._emit(failed=turn_failed(turn.turn_id, exc, log, phrase_index=index))

    def _close(self, turn: Turn, outcome: str) -> None:
        if self.turns.pop(turn.turn_id, None) is None:
            return
        turn.end_span(outcome)
        self.closed.remember(turn.turn_id, outcome)
