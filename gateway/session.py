"""One client conversation: the Converse stream's state machine.

Client audio goes to vad (resampled to 16 kHz); speech_started opens a turn
and streams the utterance, pre-roll first, to voxtral; speech_ended asks for
the reply; reply deltas go on to orpheus as they arrive; orpheus' PCM goes
back to the client while later phrases are still being synthesised. Speech
(or typed text, or Control.INTERRUPT) during a reply is a barge-in: that
turn's upstream work is cancelled and history keeps only what was heard.
End of input (Control.END_OF_INPUT, or the request stream's end) is an
endpoint too: an utterance still open is answered, then the stream closes.
With speculation on, a pause in the utterance (vad's speech_paused) ends it at
voxtral early and the reply is written and synthesised *tentatively*, its
events held until speech_ended confirms the turn, or dropped if the user
speaks on (speech_resumed): see gateway.speculation.
An endpoint whose words so far end unfinished ("… book a") is held: the turn
keeps listening until the pause reaches --hold-unfinished-ms, and speech in
that time continues it (gateway.unfinished_words). Both live in the turn's
listening phase, which owns their transitions (gateway.endpointing): the
session hands it vad's events and carries out what it decides.
Tool calls a reply makes are bound to its turn (gateway.tool_calls owns their
state): held with a tentative reply, sent only once the turn is confirmed,
cancelled with the turn, timed out; the session hands it the events and
carries out its Effects.

All state is touched from the one event loop, so there are no locks: the
client reader, the three stage readers and the watchdog each run as a task
owned by :meth:`Session.run`, and everything bound for the client passes
through one bounded queue (control before data is kept by dropping queued
audio of a cancelled turn when it reaches the head).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry import trace

from voxmesh import logs, metrics, tracing
from voxmesh.audio import PIPELINE_SAMPLE_RATE_HZ, StreamResampler, float_to_pcm16, pcm16_to_float
from voxmesh.errors import EngineOverloaded, InvalidArgument, VoxmeshError
from voxmesh.gateway.audio_clock import AudioClock
from voxmesh.gateway.barge_in import DEFAULT_MIN_SPEECH_MS, BargeInGate
from voxmesh.gateway.conversation import ConversationHistory
from voxmesh.gateway.endpointing import Endpoint, Listening
from voxmesh.gateway.input_limits import InputLimits
from voxmesh.gateway.key_presses import press
from voxmesh.gateway.placement import StagePool
from voxmesh.gateway.playback_position import estimated_played_ms
from voxmesh.gateway.session_options import SessionOptions
from voxmesh.gateway.speculation import Speculation, TentativeReply, last_word_confidence
from voxmesh.gateway.stage_link import StageFailure, StageLink
from voxmesh.gateway.tool_calls import FAILED, INTERRUPTED, Effects, ToolCalls
from voxmesh.gateway.turn import SpokenPhrase, Turn, TurnState
from voxmesh.gateway.turn_instructions import TurnInstructions
from voxmesh.gateway.unfinished_words import EndpointHold
from voxmesh.v1 import common_pb2, conversation_pb2, orpheus_pb2, vad_pb2, voxtral_pb2

log = logging.getLogger(__name__)
_tracer = tracing.tracer("voxmesh.gateway")

#: Longest typed turn accepted, in characters.
MAX_TEXT_CHARS = 4_000
#: Utterance audio is forwarded to voxtral in pieces of at most this many samples.
_FORWARD_SAMPLES = 16_000
_WATCHDOG_PERIOD_S = 0.25

Stage = common_pb2.Stage


@dataclass
class Upstreams:
    """The replicas of the three stages (shared by every session; see placement)."""

    detect: StagePool
    respond: StagePool
    synthesize: StagePool


# Out-queue items: a message, or a factory called when the item reaches the
# head (for messages that depend on what was sent before them), each with a
# callback run once the transport took it.
_Outgoing = conversation_pb2.ConverseResponse | Callable[[], conversation_pb2.ConverseResponse | None] | None
_OutItem = tuple[_Outgoing, Callable[[], None] | None]
_CLOSE = object()


class Session:
    def __init__(
        self,
        session_id: str,
        options: SessionOptions,
        upstreams: Upstreams,
        *,
        connect_timeout_s: float,
        stage_timeout_s: float,
        out_queue_size: int,
        metadata: tuple[tuple[str, str], ...] = (),
        input_limits: InputLimits | None = None,
        barge_in_min_speech_ms: int = DEFAULT_MIN_SPEECH_MS,
        speculate_after_ms: int = 0,
        hold_unfinished_ms: int = 0,
        tool_result_timeout_s: float = 30.0,
    ) -> None:
        self.session_id = session_id
        # Joins tiny audio chunks and refuses absurd message rates (gateway.input_limits).
        self._input = input_limits or InputLimits(options.input_sample_rate_hz, 0)
        self.options = options
        self._stage_timeout_s = stage_timeout_s
        self._out: asyncio.Queue[Any] = asyncio.Queue(out_queue_size)
        self._resampler = StreamResampler(options.input_sample_rate_hz, PIPELINE_SAMPLE_RATE_HZ)
        self._clock = AudioClock(PIPELINE_SAMPLE_RATE_HZ)
        #: vad counts samples from the first one of *its* stream; after vad comes
        #: back, its offsets restart at 0 and this is where that stream began.
        self._vad_base = 0
        self._vad_stream = 0
        self._turn: Turn | None = None
        self._next_turn_id = 1
        #: Ids on the voxtral/orpheus streams; ahead of turn ids once a speculative attempt is dropped.
        self._next_stage_turn_id = 1
        self._speculation = Speculation(speculate_after_ms)
        self._hold = EndpointHold(hold_unfinished_ms)
        self._tools = ToolCalls(options.tools, tool_result_timeout_s)
        self._audio_seq = 0
        self._cancelled: set[int] = set()
        self._turn_spans: dict[int, trace.Span] = {}
        self._last_progress = time.perf_counter()
        self._input_done = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        #: Kept here, not only by voxtral, so the conversation outlives its replica.
        self.conversation = ConversationHistory()
        self._typed: dict[int, str] = {}
        self._instructions = TurnInstructions(options.system_prompt)
        # Speech during a reply pauses it; only confirmed speech interrupts it.
        self._barge_in = BargeInGate(barge_in_min_speech_ms, max_held=out_queue_size)
        # perf_counter → epoch ns, for spans recorded after the fact.
        self._epoch_offset = time.time() - time.perf_counter()
        common = {"connect_timeout_s": connect_timeout_s, "metadata": metadata}
        self.vad = StageLink(
            Stage.STAGE_VAD,
            upstreams.detect,
            vad_pb2.DetectRequest(
                config=vad_pb2.DetectConfig(
                    session_id=session_id,
                    sample_rate_hz=PIPELINE_SAMPLE_RATE_HZ,
                    sensitivity=options.vad_sensitivity,  # type: ignore[arg-type]
                    confirm_speech_ms=barge_in_min_speech_ms,
                    pause_ms=speculate_after_ms,
                    hangover_ms=options.hangover_ms,
                    pre_roll_ms=options.pre_roll_ms,
                    end_of_turn=options.end_of_turn,  # type: ignore[arg-type]
                    eagerness=options.eagerness,  # type: ignore[arg-type]
                )
            ),
            self._on_vad,
            self._on_stage_failure,
            **common,  # type: ignore[arg-type]
        )
        self.voxtral = StageLink(
            Stage.STAGE_VOXTRAL,
            upstreams.respond,
            # Made when a stream opens: a new stream (another replica) gets the history so far.
            lambda: voxtral_pb2.RespondRequest(
                config=voxtral_pb2.RespondConfig(
                    session_id=session_id,
                    mode=options.turn_mode,  # type: ignore[arg-type]
                    language=options.language,
                    system_prompt=options.system_prompt,
                    sample_rate_hz=PIPELINE_SAMPLE_RATE_HZ,
                    history=self.conversation.exchanges,
                    tools=options.tools.tools,
                    tool_choice=options.tools.choice,
                )
            ),
            self._on_voxtral,
            self._on_stage_failure,
            **common,  # type: ignore[arg-type]
        )
        self.orpheus = StageLink(
            Stage.STAGE_ORPHEUS,
            upstreams.synthesize,
            orpheus_pb2.SynthesizeRequest(
                config=orpheus_pb2.SynthesizeConfig(
                    session_id=session_id,
                    voice=options.voice,
                    sample_rate_hz=options.output_sample_rate_hz,
                    language=options.language,
                )
            ),
            self._on_orpheus,
            self._on_stage_failure,
            **common,  # type: ignore[arg-type]
        )

    # ------------------------------------------------------------------ run

    async def run(
        self, requests: AsyncIterator[conversation_pb2.ConverseRequest]
    ) -> AsyncIterator[conversation_pb2.ConverseResponse]:
        """The server side of Converse after the config: yields what goes to the client."""
        logs.session_id_var.set(self.session_id)
        # A stage that refuses the config (a language it lacks, an unknown voice)
        # raises stage_link.StageRejected, an InvalidArgument naming the client's field;
        # one with no replica with room raises StageFull (RESOURCE_EXHAUSTED): the
        # session is admitted only when every stage can serve it.
        links = (self.vad, self.voxtral, self.orpheus)
        opens = [asyncio.ensure_future(link.ensure_open(admission=True)) for link in links]
        try:
            await asyncio.gather(*opens)
        except BaseException:
            # gather() leaves the other opens running: one still waiting on a slow
            # stage would open its stream after the abort, for a session already
            # refused, and hold that stage's slot for good. Stop them first.
            for pending in opens:
                pending.cancel()
            await asyncio.gather(*opens, return_exceptions=True)
            await asyncio.gather(*(link.abort() for link in links))
            raise
        # From here every exit tears the session down, including a client that
        # vanishes while SessionStarted is being written: the stream is then
        # closed at this yield (GeneratorExit), and a teardown placed after it
        # would never run (its stage streams leaked: found by the noisy-neighbour bench).
        try:
            yield conversation_pb2.ConverseResponse(
                session_started=conversation_pb2.SessionStarted(
                    session_id=self.session_id,
                    output_sample_rate_hz=self.options.output_sample_rate_hz,
                    vad=self.vad.engine,
                    voxtral=self.voxtral.engine,
                    orpheus=self.orpheus.engine,
                    voice=self.options.voice,
                    turn_mode=self.options.turn_mode,  # type: ignore[arg-type]
                )
            )
            self._tasks = [
                asyncio.create_task(self._read_client(requests), name="client-reader"),
                asyncio.create_task(self._watchdog(), name="watchdog"),
            ]
            while True:
                item = await self._out.get()
                metrics.QUEUE_DEPTH.labels("gateway_out").set(self._out.qsize())
                if item is _CLOSE:
                    return
                if isinstance(item, BaseException):
                    raise item
                payload, on_sent = item
                message = payload() if callable(payload) else payload
                if message is not None:
                    if message.WhichOneof("event") == "audio" and message.audio.turn_id in self._cancelled:
                        continue
                    yield message
                if on_sent is not None:
                    on_sent()
        finally:
            await self._teardown()

    async def _teardown(self) -> None:
        """Client gone or session over: stop our tasks and every upstream call."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        turn = self._turn
        if turn is not None and turn.state in (TurnState.LISTENING, TurnState.REPLYING):
            self._cancel_upstream(turn, turn.spoken_text(time.perf_counter()))
            self._end_span(turn, "session closed")
        self._tools.close()  # no call stays in progress past its session
        await asyncio.gather(self.vad.abort(), self.voxtral.abort(), self.orpheus.abort())

    @property
    def replying(self) -> bool:
        """A turn is in progress (the session is not idle, though the client may send nothing)."""
        return not self._idle.is_set()

    def drain(self) -> None:
        """SIGTERM: take no more input, finish the turn in progress, then close."""
        for task in self._tasks:
            if task.get_name() == "client-reader" and not task.done():
                task.cancel()
        if not self._input_done.is_set():
            self._tasks.append(asyncio.create_task(self._finish_input(), name="finish"))

    # ------------------------------------------------------------ client in

    async def _read_client(self, requests: AsyncIterator[conversation_pb2.ConverseRequest]) -> None:
        try:
            async for request in requests:
                self._input.admit()
                kind = request.WhichOneof("request")
                if kind == "audio":
                    await self._on_audio(request.audio.pcm)
                elif kind == "text":
                    await self._on_text(request.text.text, request.text.instructions)
                elif kind == "reply" and self._tools.waiting_for_reply:
                    # The turn's calls are answered: its reply goes on (OpenAI's response.create).
                    self._apply_tools(self._tools.continue_reply())
                elif kind == "reply":
                    await self._on_text("", request.reply.instructions, reply_only=True)
                elif kind == "tool_result":
                    self._apply_tools(self._tools.result(request.tool_result, time.perf_counter()))
                elif kind == "context":
                    self._instructions.add_context(request.context.text)
                elif kind == "instructions":
                    self._instructions.replace(request.instructions.system_prompt)
                elif kind == "key_press":  # a typed turn, then KeyPressed naming it (gateway.key_presses)
                    await press(
                        request.key_press.digits, self._on_text, lambda: self._next_turn_id - 1, self._emit
                    )
                elif kind == "control":
                    action = request.control.action
                    if action == conversation_pb2.Control.ACTION_INTERRUPT:
                        if self._turn is not None and self._turn.active:
                            self._interrupt(self._turn)
                    elif action == conversation_pb2.Control.ACTION_END_OF_INPUT:
                        break
                    else:
                        raise InvalidArgument("control.action", f"unknown action {action}")
                elif kind == "playback":
                    turn = self._turn
                    if turn is not None and turn.turn_id == request.playback.turn_id:
                        turn.playback.report(request.playback.played_ms)
                elif kind == "config":
                    raise InvalidArgument("config", "SessionConfig sent twice; send it once, first")
                else:
                    raise InvalidArgument(
                        "request", "empty ConverseRequest: set config, audio, text, control, reply, context or instructions"
                    )
            await self._finish_input()
        except VoxmeshError as exc:
            self._fail_fast(exc)
        except DecodeError as exc:
            self._fail_fast(InvalidArgument("request", f"not a valid ConverseRequest: {exc}"))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("client reader failed")
            self._fail_fast(exc)

    def _fail_fast(self, exc: BaseException) -> None:
        """End the session with ``exc`` ahead of anything queued (a bad message is final)."""
        while not self._out.empty():
            self._out.get_nowait()
        self._out.put_nowait(exc)

    async def _on_audio(self, pcm: bytes) -> None:
        # Joined first: the clock and vad see one entry per 10 ms at least, however small the chunks.
        for joined in self._input.audio(pcm):
            await self._forward_audio(joined)

    async def _forward_audio(self, pcm: bytes) -> None:
        samples = pcm16_to_float(pcm, "audio.pcm")
        resampled = self._resampler.process(samples)
        if len(resampled) == 0:
            return
        pcm16k = pcm if self._resampler.from_hz == PIPELINE_SAMPLE_RATE_HZ else float_to_pcm16(resampled)
        self._clock.append(resampled, time.perf_counter())
        if await self.vad.ensure_open():
            if self.vad.streams_opened != self._vad_stream:
                self._vad_stream = self.vad.streams_opened
                self._vad_base = self._clock.head - len(resampled)
            self.vad.send(vad_pb2.DetectRequest(audio=pcm16k))
        turn = self._turn
        if turn is not None and turn.state is TurnState.LISTENING:
            self._send_utterance(turn, pcm16k)
            if (endpoint := turn.listening.due(self._clock.head, time.perf_counter())) is not None:
                await self._endpoint(turn, endpoint)

    def _send_utterance(self, turn: Turn, pcm16k: bytes) -> None:
        """Utterance audio to voxtral; kept too while a speculative attempt may be discarded.

        In a tentative reply's pause voxtral's turn is already over: the audio is
        only kept, to be sent with the rest if the user speaks on.
        """
        if self._speculation.enabled:
            turn.utterance_pcm += pcm16k
        if turn.listening.utterance_at_voxtral:
            self._utterance_to_voxtral(turn, pcm16k)

    def _utterance_to_voxtral(self, turn: Turn, pcm16k: bytes) -> None:
        self.voxtral.send(
            voxtral_pb2.RespondRequest(
                audio=voxtral_pb2.UtteranceAudio(turn_id=turn.stage_turn_id, pcm=pcm16k)
            )
        )

    async def _on_text(self, text: str, instructions: str = "", reply_only: bool = False) -> None:
        """A typed turn; ``reply_only``: a ReplyRequest, the assistant speaks with no user input."""
        if not reply_only and not text.strip():
            raise InvalidArgument("text.text", "empty text")
        if len(text) > MAX_TEXT_CHARS:
            raise InvalidArgument("text.text", f"longer than {MAX_TEXT_CHARS} characters")
        turn_instructions = self._instructions.for_turn(
            instructions, "reply.instructions" if reply_only else "text.instructions"
        )
        self._touch()
        previous = self._turn
        if previous is not None and (previous.active or previous.state is TurnState.LISTENING):
            self._interrupt(previous)
        turn = self._new_turn()
        self._typed[turn.turn_id] = text
        turn.endpoint = turn.reply_requested = time.perf_counter()
        turn.state = TurnState.REPLYING
        self._idle.clear()
        if not await self.voxtral.ensure_open():
            self._unreachable(turn, self.voxtral)
            return
        self.voxtral.send(
            voxtral_pb2.RespondRequest(
                text=voxtral_pb2.TextTurn(
                    turn_id=turn.stage_turn_id,
                    text=text,
                    instructions=turn_instructions,
                    reply_only=reply_only,
                    trace_context=self._trace_context(turn),
                )
            )
        )

    async def _finish_input(self) -> None:
        """No more client input: the last endpoint is vad's or the input's end; answer, close."""
        self._input_done.set()
        for joined in self._input.flush():
            await self._forward_audio(joined)
        tail = self._resampler.flush()
        if len(tail):
            self._clock.append(tail, time.perf_counter())
            self.vad.send(vad_pb2.DetectRequest(audio=float_to_pcm16(tail)))
        await self.vad.close()
        if self._barge_in.paused:
            self._resume_reply()  # no speech_ended will come now
        turn = self._turn
        if turn is not None and turn.state is TurnState.LISTENING:
            # The input ended mid-utterance (a recording with no trailing
            # silence, a push-to-talk button released) or inside a held
            # endpoint's pause: that is the endpoint, at the last sample
            # received (or the held one's last voiced sample), and the
            # utterance is answered.
            await self._endpoint(turn, turn.listening.end_of_input(self._clock.head))
        await self._idle.wait()
        await asyncio.gather(self.voxtral.close(), self.orpheus.close())
        self._enqueue(_CLOSE)

    # ------------------------------------------------------------ stage events

    async def _on_vad(self, message: vad_pb2.DetectResponse) -> None:
        kind = message.WhichOneof("event")
        if kind == "speech_started":
            await self._on_speech_started(message.speech_started)
        elif kind == "speech_ended":
            await self._on_speech_ended(message.speech_ended)
        elif kind == "speech_confirmed" and (start := self._barge_in.confirmed()) is not None:
            await self._on_speech_started(start, confirmed=True)
        elif kind == "speech_paused":
            self._on_speech_paused()
        elif kind == "speech_resumed":
            self._on_speech_resumed()

    async def _on_speech_started(self, event: vad_pb2.VoiceStart, confirmed: bool = False) -> None:
        previous = self._turn
        if not confirmed and self._barge_in.enabled and previous is not None and previous.active:
            self._barge_in.pause(event)  # a cough or a barge-in? vad's confirmation tells
            return
        if (
            previous is not None
            and previous.state is TurnState.LISTENING
            and previous.listening.held is not None
        ):
            # Speech inside a held endpoint's pause: the same turn goes on.
            if (dropped := previous.listening.spoke_in_hold()) is not None:
                self._restart_utterance(previous, dropped)
            return
        if previous is not None and (previous.active or previous.state is TurnState.LISTENING):
            self._interrupt(previous)
        turn = self._new_turn()
        self._idle.clear()
        self._emit(
            conversation_pb2.ConverseResponse(
                speech_started=conversation_pb2.SpeechStarted(
                    turn_id=turn.turn_id,
                    audio_offset_ms=self._clock.offset_ms(self._vad_base + event.onset_sample),
                )
            )
        )
        if not await self.voxtral.ensure_open():
            self._unreachable(turn, self.voxtral)
            return
        pre_roll = self._clock.since(self._vad_base + event.utterance_start_sample)
        for start in range(0, len(pre_roll), _FORWARD_SAMPLES):
            self._send_utterance(turn, float_to_pcm16(pre_roll[start : start + _FORWARD_SAMPLES]))

    def _on_speech_paused(self) -> None:
        """A pause inside the utterance: a tentative reply may start (end it at voxtral now)."""
        turn = self._turn
        if turn is not None and turn.state is TurnState.LISTENING and turn.listening.paused():
            self._end_utterance(turn)

    def _on_speech_resumed(self) -> None:
        turn = self._turn
        if turn is None or turn.state is not TurnState.LISTENING:
            return
        if (dropped := turn.listening.resumed()) is not None:
            self._restart_utterance(turn, dropped)

    def _restart_utterance(self, turn: Turn, dropped: TentativeReply) -> None:
        """The user went on: the tentative reply's stage work is cancelled, the utterance sent again."""
        self._cancel_upstream(turn, "", dropped)
        turn.first_token = turn.first_phrase = turn.orpheus_first_audio = None
        turn.stage_turn_id = self._take_stage_turn_id()
        for start in range(0, len(turn.utterance_pcm), 2 * _FORWARD_SAMPLES):
            self._utterance_to_voxtral(turn, bytes(turn.utterance_pcm[start : start + 2 * _FORWARD_SAMPLES]))

    async def _on_speech_ended(self, event: vad_pb2.VoiceEnd) -> None:
        if self._barge_in.paused:
            self._resume_reply()  # the sound ended unconfirmed: not a barge-in
            return
        turn = self._turn
        if turn is None or turn.state is not TurnState.LISTENING:
            return
        last_voiced = self._vad_base + event.last_voiced_sample
        endpoint = turn.listening.at_vad_endpoint(
            last_voiced,
            self._vad_base + event.decided_at_sample,
            turn.listening.words_so_far(turn.transcript),
            self.options.language,
            self._clock.wall_time_of(last_voiced),
            turn.listening.confidence_so_far(turn.transcript_confidence),
            event.turn_complete_probability if event.HasField("turn_complete_probability") else None,
        )
        if endpoint is not None:
            await self._endpoint(turn, endpoint)

    async def _endpoint(self, turn: Turn, endpoint: Endpoint) -> None:
        """The turn is over (its listening phase decided so): ask for the reply, or release the tentative one.

        ``endpoint``'s positions are samples of the session's audio clock.
        """
        last_voiced, decided_at = endpoint.last_voiced, endpoint.decided_at
        turn.utterance_pcm = bytearray()  # no attempt will need it again
        turn.endpoint = time.perf_counter()
        turn.t_end = self._clock.wall_time_of(last_voiced)
        turn.state = TurnState.REPLYING
        self._touch()
        self._emit(
            conversation_pb2.ConverseResponse(
                speech_ended=conversation_pb2.SpeechEnded(
                    turn_id=turn.turn_id,
                    last_voiced_offset_ms=self._clock.offset_ms(last_voiced),
                    endpoint_offset_ms=self._clock.offset_ms(decided_at),
                )
            )
        )
        if not endpoint.speculative:
            self._end_utterance(turn)
            return
        # Confirmed: what the stages sent in the pause goes out now, in order.
        turn.speculative = True
        for source, message in endpoint.replay:
            if turn.state is TurnState.ENDED:
                break
            if source == "voxtral":
                await self._on_voxtral(message, replayed=True)
            else:
                await self._on_orpheus(message)

    def _end_utterance(self, turn: Turn) -> None:
        """Ask voxtral for the reply: at the endpoint, or in a pause (tentatively)."""
        turn.reply_requested = time.perf_counter()
        sent = self.voxtral.send(
            voxtral_pb2.RespondRequest(
                end_of_turn=voxtral_pb2.EndOfTurn(
                    turn_id=turn.stage_turn_id,
                    instructions=self._instructions.for_turn("", "context"),
                    trace_context=self._trace_context(turn),
                )
            )
        )
        if not sent:
            self._stage_error(Stage.STAGE_VOXTRAL, "UNAVAILABLE", "voxtral stream is down", turn)
            self._end_turn(turn, "voxtral down")

    async def _on_voxtral(self, message: voxtral_pb2.RespondResponse, replayed: bool = False) -> None:
        """``replayed``: held during a tentative reply, handled at its confirmation (orpheus had it then)."""
        kind = message.WhichOneof("event")
        event = getattr(message, kind)
        turn = self._turn
        if turn is None or event.turn_id != turn.stage_turn_id or turn.state is TurnState.ENDED:
            return
        self._touch()
        if turn.tentative is not None:
            await self._speculate(turn, kind, message)
            return
        if kind == "transcript":
            turn.transcript = event.text
            turn.transcript_confidence = last_word_confidence(event)
            self._emit(
                conversation_pb2.ConverseResponse(
                    transcript=conversation_pb2.Transcript(
                        turn_id=turn.turn_id, text=event.text, is_final=event.is_final
                    )
                )
            )
        elif kind == "reply":
            if turn.first_token is None:
                turn.first_token = time.perf_counter()
            turn.reply_text += event.delta
            self._emit(
                conversation_pb2.ConverseResponse(
                    reply_text=conversation_pb2.ReplyText(turn_id=turn.turn_id, delta=event.delta)
                )
            )
            if not replayed:
                await self._to_orpheus(turn, event.delta, first=len(turn.reply_text) == len(event.delta))
        elif kind == "done":
            turn.reply_done = True
            turn.prompt_tokens = event.prompt_tokens
            # As voxtral records it; a barge-in later keeps only what was heard (_interrupt).
            self.conversation.record(
                turn.turn_id, self._user_words(turn), turn.reply_text, self._tools.history(turn.turn_id)
            )
            if not turn.reply_text.strip():
                # transcribe mode (or an empty reply): the turn ends with no audio.
                self._complete(turn)
            elif not replayed and not self._end_of_text(turn):
                self._stage_error(Stage.STAGE_ORPHEUS, "UNAVAILABLE", "orpheus stream is down", turn)
                self._end_turn(turn, "orpheus down")
        elif kind == "tool_calls":
            self._apply_tools(
                self._tools.made(turn.turn_id, turn.stage_turn_id, event, time.perf_counter()), turn
            )
        elif kind == "failed":
            self._stage_error(Stage.STAGE_VOXTRAL, event.code, event.message, turn, event.retryable)
            self.orpheus.send(
                orpheus_pb2.SynthesizeRequest(cancel=common_pb2.CancelTurn(turn_id=turn.stage_turn_id))
            )
            self._end_turn(turn, "voxtral failed")

    async def _speculate(self, turn: Turn, kind: str, message: voxtral_pb2.RespondResponse) -> None:
        """Voxtral's answer to a tentative turn: orpheus gets the text now, the client nothing yet."""
        assert turn.tentative is not None
        turn.tentative.hold("voxtral", message)
        if kind == "tool_calls":
            self._tools.hold(turn.stage_turn_id, message.tool_calls)  # sent only if the endpoint confirms
        elif kind == "reply":
            if turn.first_token is None:
                turn.first_token = time.perf_counter()
            first = not turn.tentative.fed_orpheus
            turn.tentative.fed_orpheus = True
            await self._to_orpheus(turn, message.reply.delta, first=first)
        elif kind == "done" and turn.tentative.fed_orpheus:
            self._end_of_text(turn)  # its failure shows at the confirmation, as orpheus' silence

    async def _to_orpheus(self, turn: Turn, delta: str, first: bool) -> None:
        if first and not await self.orpheus.ensure_open():
            self._cancel_upstream(turn, "")
            self._unreachable(turn, self.orpheus)
            return
        self.orpheus.send(
            orpheus_pb2.SynthesizeRequest(
                text=orpheus_pb2.TextDelta(
                    turn_id=turn.stage_turn_id,
                    text=delta,
                    trace_context=self._trace_context(turn) if first else {},
                )
            )
        )

    def _end_of_text(self, turn: Turn) -> bool:
        return self.orpheus.send(
            orpheus_pb2.SynthesizeRequest(end_of_text=orpheus_pb2.EndOfText(turn_id=turn.stage_turn_id))
        )

    async def _on_orpheus(self, message: orpheus_pb2.SynthesizeResponse) -> None:
        kind = message.WhichOneof("event")
        event = getattr(message, kind)
        turn = self._turn
        if turn is None or event.turn_id != turn.stage_turn_id or turn.state is TurnState.ENDED:
            return
        self._touch()
        now = time.perf_counter()
        if turn.tentative is not None:
            # Synthesised ahead: stamped now (the stage marks are real), shown at the endpoint.
            if kind == "phrase_started" and turn.first_phrase is None:
                turn.first_phrase = now
            elif kind == "audio" and turn.orpheus_first_audio is None:
                turn.orpheus_first_audio = now
            turn.tentative.hold("orpheus", message)
            return
        if kind == "phrase_started":
            if turn.first_phrase is None:
                turn.first_phrase = now
        elif kind == "audio":
            if turn.orpheus_first_audio is None:
                turn.orpheus_first_audio = now
            samples = len(event.pcm) // 2
            turn.audio_samples_received += samples
            self._audio_seq += 1
            out = conversation_pb2.ConverseResponse(
                audio=conversation_pb2.AudioOut(
                    turn_id=turn.turn_id,
                    sequence=self._audio_seq - 1,
                    pcm=event.pcm,
                    sample_rate_hz=event.sample_rate_hz,
                )
            )
            rate = event.sample_rate_hz
            self._emit_reply(out, lambda: turn.note_audio_sent(samples, rate, time.perf_counter()))
        elif kind == "phrase_done":
            text = event.text
            turn.playback.phrase_done(text, turn.audio_samples_received)
            # Recorded when the phrase's last chunk was sent, with its playout end.
            self._emit_reply(None, lambda: turn.phrases.append(SpokenPhrase(text, turn.playout_end)))
        elif kind == "done":
            self._complete(turn)
        elif kind == "failed":
            self._stage_error(Stage.STAGE_ORPHEUS, event.code, event.message, turn, event.retryable)
            self._cancel_upstream(turn, turn.spoken_text(now))
            self._end_turn(turn, "orpheus failed")

    async def _on_stage_failure(self, failure: StageFailure) -> None:
        turn = self._turn
        affected = turn is not None and turn.state in (TurnState.LISTENING, TurnState.REPLYING)
        if failure.drained and not affected:
            # A draining replica let go of the stream between turns: the next turn opens elsewhere.
            log.info("stage stream moved off a draining replica", extra=logs.fields(stage=failure.stage))
            return
        self._stage_error(
            failure.stage, failure.code, failure.message, turn if affected else None, failure.retryable
        )
        if turn is not None and affected:
            self._cancel_upstream(turn, turn.spoken_text(time.perf_counter()))
            self._end_turn(turn, f"{failure.code} from stage {failure.stage}")

    # --------------------------------------------------------------- turns

    def _new_turn(self) -> Turn:
        turn = Turn(
            turn_id=self._next_turn_id,
            stage_turn_id=self._take_stage_turn_id(),
            listening=Listening(self._next_turn_id, self._speculation, self._hold),
        )
        self._next_turn_id += 1
        self._turn = turn
        logs.turn_id_var.set(turn.turn_id)
        self._turn_spans[turn.turn_id] = _tracer.start_span(
            "turn", attributes={"voxmesh.session_id": self.session_id, "voxmesh.turn_id": turn.turn_id}
        )
        return turn

    def _take_stage_turn_id(self) -> int:
        stage_turn_id = self._next_stage_turn_id
        self._next_stage_turn_id += 1
        return stage_turn_id

    def _user_words(self, turn: Turn) -> str:
        return turn.transcript or self._typed.get(turn.turn_id, "")

    def _trace_context(self, turn: Turn) -> dict[str, str]:
        span = self._turn_spans.get(turn.turn_id)
        return tracing.inject(trace.set_span_in_context(span)) if span is not None else {}

    def _interrupt(self, turn: Turn) -> None:
        """Barge-in: stop the reply, keep in history only what the user heard."""
        rate = self.options.output_sample_rate_hz
        estimate = estimated_played_ms(turn.audio_samples_sent, turn.playout_end, time.perf_counter(), rate)
        # The client cannot have played audio it was never sent.
        played_ms = min(turn.playback.played_ms(estimate), 1000.0 * turn.audio_samples_sent / rate)
        spoken = turn.playback.heard_text(played_ms, rate)  # to the word (gateway.playback_position)
        was_replying = turn.state is TurnState.REPLYING or (turn.state is TurnState.DONE and turn.active)
        self._cancel_upstream(turn, spoken)
        turn.listening.abandon()
        self._cancelled.add(turn.turn_id)
        self._apply_tools(self._tools.cancel_turn(turn.turn_id, INTERRUPTED))
        if was_replying:
            # Calls still open were just cancelled: only answered ones are kept with what was heard.
            self.conversation.record(
                turn.turn_id, self._user_words(turn), spoken, self._tools.history(turn.turn_id)
            )
        if turn.state is not TurnState.LISTENING and was_replying:
            sent_ms = 1000.0 * turn.audio_samples_sent / self.options.output_sample_rate_hz
            self._emit(
                conversation_pb2.ConverseResponse(
                    interrupted=conversation_pb2.Interrupted(
                        turn_id=turn.turn_id, spoken_text=spoken, audio_sent_ms=sent_ms, played_ms=played_ms
                    )
                )
            )
            metrics.INTERRUPTIONS.inc()
            metrics.TURNS.labels("interrupted").inc()
        turn.state = TurnState.ENDED
        self._end_span(turn, "interrupted")
        # Nothing is in progress now; a barge-in's new turn clears this at once.
        self._idle.set()

    def _cancel_upstream(self, turn: Turn, spoken_text: str, dropped: TentativeReply | None = None) -> None:
        """``dropped``: a tentative reply the listening phase just let go of (else the turn's own)."""
        tentative = dropped or turn.tentative
        # A tentative reply was never heard: voxtral forgets it, user side included.
        discard = tentative is not None
        if discard:
            self._tools.discard(turn.stage_turn_id)  # its held calls never reach the client
        cancel = common_pb2.CancelTurn(turn_id=turn.stage_turn_id, spoken_text=spoken_text, discard=discard)
        self.voxtral.send(voxtral_pb2.RespondRequest(cancel=cancel))
        if turn.state is TurnState.REPLYING or (tentative is not None and tentative.fed_orpheus):
            self.orpheus.send(
                orpheus_pb2.SynthesizeRequest(cancel=common_pb2.CancelTurn(turn_id=turn.stage_turn_id))
            )

    def _unreachable(self, turn: Turn, link: StageLink) -> None:
        """The turn cannot reach the stage. Said to the client even when the link
        stayed quiet (it reports once per retry window, not per turn): a turn
        must not end with no word of why.
        """
        if turn.state is not TurnState.ENDED:
            self._stage_error(link.stage, "UNAVAILABLE", f"{link.name} unreachable; retrying", turn)
        self._end_turn(turn, f"{link.name} unreachable")

    def _end_turn(self, turn: Turn, reason: str) -> None:
        if turn.state is TurnState.ENDED:
            return
        turn.state = TurnState.ENDED
        self._cancelled.add(turn.turn_id)
        self._apply_tools(self._tools.cancel_turn(turn.turn_id, FAILED))
        metrics.TURNS.labels("failed").inc()
        log.info("turn ended early", extra=logs.fields(turn_id=turn.turn_id, reason=reason))
        self._end_span(turn, reason)
        self._idle.set()

    def _complete(self, turn: Turn) -> None:
        """All reply audio is queued: TurnComplete goes out after the last chunk."""
        turn.state = TurnState.DONE
        self._idle.set()
        self._emit_reply(lambda: self._turn_complete(turn))

    def _turn_complete(self, turn: Turn) -> conversation_pb2.ConverseResponse | None:
        if turn.turn_id in self._cancelled:
            return None
        latency = turn.latency()
        metrics.TURNS.labels("completed").inc()
        if turn.first_audio_sent is not None:
            metrics.RESPONSE_LATENCY.observe(latency.response_latency_ms / 1000)
            metrics.VOICE_TO_VOICE.observe(latency.voice_to_voice_ms / 1000)
        marks = {
            "vad_decision": turn.t_end,
            "voxtral_first_token": turn.first_token,
            "first_phrase": turn.first_phrase,
            "orpheus_first_audio": turn.orpheus_first_audio,
            "gateway_overhead": turn.first_audio_sent if turn.orpheus_first_audio else None,
        }
        for stage, mark in marks.items():
            if mark is not None:
                # A mark reached before the endpoint (a speculative reply) cost the user no wait: 0.
                value = max(getattr(latency, f"{stage}_ms"), 0.0)
                metrics.STAGE_LATENCY.labels(stage).observe(value / 1000)
        self._record_stage_spans(turn)
        log.info(
            "turn complete",
            extra=logs.fields(
                turn_id=turn.turn_id, response_latency_ms=round(latency.response_latency_ms, 1)
            ),
        )
        return conversation_pb2.ConverseResponse(
            turn_complete=conversation_pb2.TurnComplete(
                turn_id=turn.turn_id,
                latency=latency,
                transcript=turn.transcript,
                reply_text=turn.reply_text,
                reply_audio_ms=1000.0 * turn.audio_samples_received / self.options.output_sample_rate_hz,
                prompt_tokens=turn.prompt_tokens,
                speculative=turn.speculative,
            )
        )

    def _stage_error(
        self, stage: int, code: str, message: str, turn: Turn | None, retryable: bool = True
    ) -> None:
        stage_name = common_pb2.Stage.Name(stage).removeprefix("STAGE_").lower()  # type: ignore[arg-type]
        metrics.ERRORS.labels(stage_name, code).inc()
        log.warning("stage error", extra=logs.fields(stage=stage_name, code=code, error=message))
        self._emit(
            conversation_pb2.ConverseResponse(
                error=conversation_pb2.Error(
                    stage=stage,  # type: ignore[arg-type]
                    code=code,
                    message=message,
                    turn_id=turn.turn_id if turn is not None else 0,
                    retryable=retryable,
                )
            )
        )

    async def _watchdog(self) -> None:
        """A stage that goes quiet mid-turn gets DEADLINE_EXCEEDED, and the session goes on."""
        while True:
            await asyncio.sleep(_WATCHDOG_PERIOD_S)
            # A stage that stopped reading (vad included, which answers nothing while
            # it hears silence) is dropped and reported as an Error naming it.
            for link in (self.vad, self.voxtral, self.orpheus):
                link.drop_if_stuck()
            self._apply_tools(self._tools.expired(time.perf_counter()))
            turn = self._turn
            if turn is not None and turn.state is TurnState.LISTENING:
                # A client that stopped sending audio inside a hold: the audio clock never gets there.
                if (endpoint := turn.listening.due(self._clock.head, time.perf_counter())) is not None:
                    await self._endpoint(turn, endpoint)
            if turn is None or turn.state is not TurnState.REPLYING:
                continue
            if self._tools.awaiting(turn.stage_turn_id):
                self._touch()  # the client owes the answer, not a stage: its own timeout applies
                continue
            if time.perf_counter() - self._last_progress > self._stage_timeout_s:
                stage = Stage.STAGE_ORPHEUS if turn.reply_done else Stage.STAGE_VOXTRAL
                self._stage_error(
                    stage, "DEADLINE_EXCEEDED", f"no answer within {self._stage_timeout_s:g} s", turn
                )
                self._cancel_upstream(turn, turn.spoken_text(time.perf_counter()))
                self._end_turn(turn, "stage timeout")

    # ------------------------------------------------------------- tools

    def _apply_tools(self, effects: Effects, turn: Turn | None = None) -> None:
        """Carry out what gateway.tool_calls decided: events out, refusals, results on to voxtral."""
        for message in effects.to_client:
            self._emit(message)
        for field_name, reason in effects.refused:
            stage = Stage.STAGE_VOXTRAL if field_name.startswith("tool_call.") else Stage.STAGE_GATEWAY
            self._stage_error(
                stage, "INVALID_ARGUMENT", f"{field_name}: {reason}", turn or self._turn, retryable=True
            )
        for results in effects.to_voxtral:
            self._touch()  # the reply goes on: voxtral owes the next answer from now
            self.voxtral.send(voxtral_pb2.RespondRequest(tool_results=results))

    # ------------------------------------------------------------- output

    def _emit(
        self,
        payload: _Outgoing,
        on_sent: Callable[[], None] | None = None,
    ) -> None:
        self._enqueue((payload, on_sent))

    def _enqueue(self, item: object) -> None:
        try:
            self._out.put_nowait(item)
        except asyncio.QueueFull:
            # The client stopped reading: end the session rather than buffer without bound.
            self._fail_fast(
                EngineOverloaded(
                    f"client is not reading: {self._out.maxsize} messages queued (out_queue_size); session ended"
                )
            )

    def _emit_reply(
        self,
        payload: _Outgoing,
        on_sent: Callable[[], None] | None = None,
    ) -> None:
        """The reply's audio and what must follow it: held while speech may be a barge-in."""
        for item in self._barge_in.hold((payload, on_sent)):
            self._emit(*item)

    def _resume_reply(self) -> None:
        for item in self._barge_in.ended():
            self._emit(*item)

    def _touch(self) -> None:
        """A stage (or a turn transition) made progress. Client audio does not
        count: a live mic streams all the time, and it must not hide a stage
        that stopped answering from the watchdog.
        """
        self._last_progress = time.perf_counter()

    # ------------------------------------------------------------- tracing

    def _epoch_ns(self, mark: float) -> int:
        return int((mark + self._epoch_offset) * 1e9)

    def _record_stage_spans(self, turn: Turn) -> None:
        span = self._turn_spans.pop(turn.turn_id, None)
        if span is None:
            return
        parent = trace.set_span_in_context(span)
        # The stages' spans start when the reply was asked for: the endpoint, or
        # earlier, in the pause, for a speculative reply (so no span ends before it starts).
        asked = turn.reply_requested or turn.endpoint
        span.set_attribute("voxmesh.speculative", turn.speculative)
        marks = [
            ("vad_decision", turn.t_end, turn.endpoint),
            ("voxtral_first_token", asked, turn.first_token),
            ("first_phrase", asked, turn.first_phrase),
            ("orpheus_first_audio", asked, turn.orpheus_first_audio),
            ("response_latency", turn.endpoint, turn.first_audio_sent),
        ]
        for name, start, end in marks:
            if start is not None and end is not None:
                child = _tracer.start_span(name, context=parent, start_time=self._epoch_ns(start))
                child.end(end_time=self._epoch_ns(end))
        span.end()

    def _end_span(self, turn: Turn, reason: str) -> None:
        span = self._turn_spans.pop(turn.turn_id, None)
        if span is not None:
            span.set_attribute("voxmesh.ended", reason)
            span.end()
