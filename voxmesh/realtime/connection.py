"""One WebSocket's conversation: OpenAI Realtime client events in, gateway events out.

Each connection owns one gateway ``Converse`` session (an ``AsyncSession``) and
one task that turns its events into Realtime server events. The Converse
config is fixed when the stream opens, so a ``session.update`` that changes it
reopens the stream while nothing has been said yet, and is refused naming the
field afterwards (voice, instructions and formats are per conversation here).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from voxmesh.client import (
    AsyncSession,
    AudioOut,
    Event,
    Interrupted,
    InvalidRequest,
    ReplyText,
    SessionStarted,
    SpeechEnded,
    SpeechStarted,
    StageError,
    ToolCall,
    ToolCallCancelled,
    Transcript,
    TurnComplete,
    VoxmeshClientError,
)
from voxmesh.realtime import metrics
from voxmesh.realtime.client_events import (
    CONTEXT_ROLES,
    MAX_INSTRUCTIONS_CHARS,
    message_item,
    response_params,
)
from voxmesh.realtime.function_calls import (
    FunctionCalls,
    arguments_text,
    function_call_item,
    function_call_output_item,
    output_of,
)
from voxmesh.realtime.protocol_error import ProtocolError, unsupported
from voxmesh.realtime.server_events import (
    Ids,
    Response,
    context_item,
    latency_ms,
    part_events,
    user_audio_item,
    user_text_item,
)
from voxmesh.realtime.session_config import EdgeSessionConfig

log = logging.getLogger("voxmesh.realtime")

#: Gateway config field (as its INVALID_ARGUMENT names it) → the session.update field that set it.
_GATEWAY_FIELDS = {
    "sample_rate_hz": "session.audio.input.format",
    "output_sample_rate_hz": "session.audio.output.format",
    "voice": "session.audio.output.voice",
    "language": "session.audio.input.transcription.language",
    "system_prompt": "session.instructions",
    "vad_sensitivity": "session.audio.input.turn_detection.threshold",
    "end_of_turn": "session.audio.input.turn_detection.type",
    "eagerness": "session.audio.input.turn_detection.eagerness",
    "silence_duration_ms": "session.audio.input.turn_detection.silence_duration_ms",
    "prefix_padding_ms": "session.audio.input.turn_detection.prefix_padding_ms",
    "tools": "session.tools",
    "tool_choice": "session.tool_choice",
    "tools_wait_for_reply": "session.tools",
}
_GATEWAY_MESSAGE_FIELDS = {
    "config.input_sample_rate_hz": "sample_rate_hz",
    "config.output_sample_rate_hz": "output_sample_rate_hz",
    "config.voice": "voice",
    "config.language": "language",
    "config.system_prompt": "system_prompt",
    "config.vad_sensitivity": "vad_sensitivity",
    "config.turn_detection.silence_duration_ms": "silence_duration_ms",
    "config.turn_detection.prefix_padding_ms": "prefix_padding_ms",
    "config.turn_detection.eagerness": "eagerness",
    "config.turn_detection": "end_of_turn",
    "config.tools": "tools",
    "config.tool_choice": "tool_choice",
}
SendJson = Callable[[dict[str, Any]], Awaitable[None]]
#: How long a truncate waits for the gateway's Interrupted. It comes within a
#: round trip when the reply is still playing by the gateway's clock; none
#: comes when that clock says it was all heard (then history keeps all of it).
TRUNCATE_WAIT_S = 2.0
#: A truncate this close to a reply's end is at its end (clients round their
#: position down to whole ms, or to the frame they had played).
_LAST_FRAME_MS = 20


@dataclass(frozen=True)
class _Opened:
    """A gateway session and the config it was opened with (the voice may have fallen back)."""

    session: AsyncSession
    config: EdgeSessionConfig


@dataclass(frozen=True)
class EdgeLimits:
    #: Audio a client may hold uncommitted with turn detection off (PCM16 bytes).
    max_buffer_bytes: int
    #: Silence sent after committed audio so the gateway's VAD calls the end (> its hangover).
    commit_silence_ms: int


async def open_gateway(
    gateway: str, token: str | None, config: EdgeSessionConfig, options: dict[str, Any]
) -> AsyncSession:
    """A Converse session for this config; an INVALID_ARGUMENT becomes a ProtocolError naming the session field.

    ``options``: the channel's ``tls`` and ``root_certificates`` for ``AsyncSession.connect``.
    """
    try:
        return await AsyncSession.connect(gateway, token=token, **options, **config.gateway_config())
    except InvalidRequest as exc:
        field = next((f for key, f in _GATEWAY_MESSAGE_FIELDS.items() if key in exc.message), None)
        raise ProtocolError(
            f"the gateway refused the session: {exc.message}",
            param=_GATEWAY_FIELDS.get(field or "", "session"),
        ) from None


class RealtimeConnection:
    """The state of one Realtime WebSocket: config, the Converse session, turns and responses."""

    def __init__(
        self,
        send: SendJson,
        gateway: str,
        token: str | None,
        session: AsyncSession,
        limits: EdgeLimits,
        ids: Ids,
        gateway_options: dict[str, Any],
    ) -> None:
        self._send_json = send
        self._gateway = gateway
        self._gateway_options = gateway_options
        self._token = token
        self._session = session
        self._limits = limits
        self._ids = ids
        self.config = EdgeSessionConfig()
        #: Whether anything reached the gateway that a reopened stream would lose.
        self._spoken = False
        self._pump: asyncio.Task[None] | None = None
        self._buffer = bytearray()  # turn detection off: audio not yet committed
        self._committed: tuple[str, bytes] | None = None
        self._pending_text: list[tuple[str, str]] = []
        #: Responses asked for by response.create, waiting for the gateway's next turn id.
        self._awaiting: deque[Response] = deque()
        self._turns: dict[int, Response] = {}
        self._speech_items: dict[int, str] = {}
        self._partial: dict[int, str] = {}
        self._active: Response | None = None
        self._last_item: str | None = None
        self._done_items: dict[str, str] = {}  # assistant item id → final status
        #: Every item of the conversation, and those the client deleted (see _delete).
        self._items: set[str] = set()
        self._deleted: set[str] = set()
        self._context_chars = 0
        #: Truncates waiting for the gateway's Interrupted, by turn id.
        self._truncating: dict[int, asyncio.Future[Interrupted]] = {}
        #: Function calls' items and outputs (voxmesh.realtime.function_calls).
        self._calls = FunctionCalls()

    # ------------------------------------------------------------------ life

    async def start(self) -> None:
        await self._emit("session.created", session=self.config.as_json(self._session.started))
        self._pump = asyncio.create_task(self._pump_events(self._session))

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump
        await self._session.close()

    async def pump_done(self) -> None:
        """Returns when the gateway stream ended (the connection should close).

        A ``session.update`` that reopens the stream replaces the pump: keep waiting on the new one.
        """
        while (pump := self._pump) is not None:
            await asyncio.wait({pump})
            if pump is self._pump:
                return

    async def _emit(self, type_: str, **fields: Any) -> None:
        await self._send_json({"type": type_, "event_id": self._ids.new("event"), **fields})

    async def send_error(self, error: ProtocolError, client_event_id: str | None) -> None:
        metrics.ERRORS.labels(error.code).inc()
        await self._emit("error", error=error.body(client_event_id))

    async def _warn(self, code: str, message: str, param: str) -> None:
        """Something served otherwise than asked: a ``voxmesh.warning``, never an ``error``
        (Pipecat ends its connection on any ``error``; clients ignore event types they do not know).
        """
        log.info("warning: %s", message, extra={"code": code, "param": param})
        await self._emit("voxmesh.warning", warning={"code": code, "message": message, "param": param})

    # ---------------------------------------------------------- client events

    async def handle_text(self, text: str) -> None:
        """One client frame; any refusal becomes an ``error`` event and the connection goes on."""
        event_id: str | None = None
        try:
            try:
                event = json.loads(text)
            except (json.JSONDecodeError, RecursionError) as exc:
                raise ProtocolError(f"the message is not valid JSON ({exc})", code="invalid_json") from None
            if not isinstance(event, dict):
                raise ProtocolError("an event must be a JSON object", code="invalid_json")
            raw_id = event.get("event_id")
            event_id = raw_id if isinstance(raw_id, str) else None
            kind = event.get("type")
            handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
            metrics.CLIENT_EVENTS.labels(kind if handler else "unknown").inc()
            if handler is None:
                if kind in _UNSUPPORTED:
                    raise unsupported("type", f"the {kind} event")
                raise ProtocolError(
                    f"unknown event type {kind!r}; supported: {', '.join(sorted(_HANDLERS))}", param="type"
                )
            await handler(self, event)
        except ProtocolError as exc:
            await self.send_error(exc, event_id)

    async def _session_update(self, event: dict[str, Any]) -> None:
        config = self.config.updated(event.get("session"))
        old, new = self.config.gateway_config(), config.gateway_config()
        changed = [key for key in new if new[key] != old[key]]
        if changed and self._spoken:
            fixed = [key for key in changed if key != "system_prompt"]
            if fixed:
                raise ProtocolError(
                    f"{_GATEWAY_FIELDS[fixed[0]]} cannot change once the conversation has started "
                    "(voxmesh fixes it per conversation); open a new connection",
                    param=_GATEWAY_FIELDS[fixed[0]],
                )
            # Instructions can change mid-call (LiveKit's update_instructions, an agent handoff).
            if len(config.instructions) > MAX_INSTRUCTIONS_CHARS:
                raise ProtocolError(
                    f"instructions longer than {MAX_INSTRUCTIONS_CHARS} characters",
                    param="session.instructions",
                )
            await self._session.update_instructions(config.instructions)
        elif changed:
            fresh = await self._open_with_voice_fallback(config)
            config = fresh.config
            await self.close()
            self._session = fresh.session
            self._pump = asyncio.create_task(self._pump_events(fresh.session))
        if self.config.server_vad and not config.server_vad:
            self._buffer.clear()
        self.config = config
        for adjustment in config.adjustments:
            await self._warn("value_adjusted", adjustment, adjustment.split(":", 1)[0])
        started = self._session.started
        semantic_asked = config.turn_type == "semantic_vad" and "end_of_turn" in changed
        if semantic_asked and started is not None and started.vad.end_of_turn == "silence":
            await self._warn(
                "semantic_vad_unavailable",
                "semantic_vad is served by silence endpointing: the vad service has no end-of-turn "
                "model loaded (voxmesh serve vad --end-of-turn smart-turn)",
                "session.audio.input.turn_detection.type",
            )
        await self._emit("session.updated", session=config.as_json(started))

    async def _open_with_voice_fallback(self, config: EdgeSessionConfig) -> _Opened:
        """Open the gateway stream; a voice the mesh does not have falls back to its default
        voice with a warning, so the rest of the update (the instructions) is kept.
        """
        voice_field = _GATEWAY_FIELDS["voice"]
        try:
            return _Opened(
                await open_gateway(self._gateway, self._token, config, self._gateway_options), config
            )
        except ProtocolError as exc:
            if exc.param != voice_field or not config.voice:
                raise
            fallback = dataclasses.replace(config, voice="")
            session = await open_gateway(self._gateway, self._token, fallback, self._gateway_options)
            await self._warn(
                "unknown_voice",
                f"voice {config.voice!r} is not one voxmesh has (OpenAI's names map onto Orpheus voices, "
                f"see the README); the default voice {session.started.voice if session.started else ''!r} "
                "speaks instead",
                voice_field,
            )
            return _Opened(session, fallback)

    async def _append(self, event: dict[str, Any]) -> None:
        pcm = self.config.input_format.decode(event.get("audio"), "audio")
        if self.config.server_vad:
            self._spoken = True
            await self._session.send_audio(pcm)
            return
        if len(self._buffer) + len(pcm) > self._limits.max_buffer_bytes:
            raise ProtocolError(
                f"the input audio buffer holds at most {self._limits.max_buffer_bytes} bytes; commit or clear it",
                param="audio",
                code="input_audio_buffer_full",
            )
        self._buffer += pcm

    async def _commit(self, event: dict[str, Any]) -> None:
        if self.config.server_vad:
            raise unsupported(
                "type", "input_audio_buffer.commit with server_vad on (the gateway's VAD commits turns)"
            )
        # 100 ms is OpenAI's own minimum for a commit.
        if len(self._buffer) < self.config.input_format.rate_hz * 2 // 10:
            raise ProtocolError(
                "the input audio buffer holds less than 100 ms of audio",
                code="input_audio_buffer_commit_empty",
            )
        item_id = self._ids.new("item")
        self._committed = (item_id, bytes(self._buffer))
        self._buffer.clear()
        await self._emit("input_audio_buffer.committed", item_id=item_id, previous_item_id=self._last_item)
        await self._item_added(user_audio_item(item_id))

    async def _clear(self, event: dict[str, Any]) -> None:
        if self.config.server_vad:
            raise unsupported(
                "type", "input_audio_buffer.clear with server_vad on (audio already went to the VAD)"
            )
        self._buffer.clear()
        await self._emit("input_audio_buffer.cleared")

    async def _item_create(self, event: dict[str, Any]) -> None:
        raw = event.get("item")
        if isinstance(raw, dict) and raw.get("type") == "function_call_output":
            await self._function_call_output(raw)
            return
        item = message_item(event.get("item"))
        item_id, role, text = item.id or self._ids.new("item"), item.role, item.text
        if item_id in self._deleted:
            # An item put back after its delete (how LiveKit updates one): the
            # history still holds it, so it is no new turn and no new context.
            self._deleted.discard(item_id)
            added = user_text_item(item_id, text) if role == "user" else context_item(item_id, role, text)
        elif role == "user":
            self._pending_text.append((item_id, text))
            added = user_text_item(item_id, text)
        else:
            # Context for every later reply, not a turn: voxtral is told it after the
            # session's instructions (the history holds only what was said and heard).
            context = CONTEXT_ROLES[role].format(text).strip()
            if self._context_chars + len(context) > MAX_INSTRUCTIONS_CHARS:
                raise ProtocolError(
                    f"the conversation's system and assistant items hold at most {MAX_INSTRUCTIONS_CHARS} "
                    f"characters together ({self._context_chars} used)",
                    param="item.content",
                )
            self._context_chars += len(context)
            self._spoken = True
            await self._session.add_context(context)
            added = context_item(item_id, role, text)
        await self._item_added(added)
        await self._emit("conversation.item.done", item=added, previous_item_id=None)

    async def _response_create(self, event: dict[str, Any]) -> None:
        params = response_params(event.get("response"))
        instructions, metadata = params.instructions, params.metadata
        if self._active is not None or self._awaiting:
            raise ProtocolError(
                "a response is already in progress; cancel it first",
                code="conversation_already_has_active_response",
            )
        if (turn_id := self._calls.take_answered_turn()) is not None:
            # Every call of the turn has its output: the same turn's reply goes on, in a new response.
            response = await self._new_response(None, turn_id=turn_id, metadata=metadata)
            self._turns[turn_id] = response
            await self._session.request_reply()
            return
        if self._committed is not None and instructions:
            # Committed audio becomes a spoken turn at the gateway, which takes no per-turn instructions.
            raise unsupported(
                "response.instructions", "per-response instructions for committed audio (send them as text)"
            )
        if self._pending_text:
            user_item, text = self._pending_text[-1][0], "\n".join(t for _, t in self._pending_text)
            self._pending_text.clear()
            response = await self._new_response(user_item, metadata=metadata)
            self._awaiting.append(response)
            self._spoken = True
            await self._session.send_text(text, instructions or "")
        elif self._committed is not None:
            user_item, pcm = self._committed
            self._committed = None
            response = await self._new_response(user_item, metadata=metadata)
            self._awaiting.append(response)
            self._spoken = True
            silence = bytes(2 * self.config.input_format.rate_hz * self._limits.commit_silence_ms // 1000)
            await self._session.send_audio(pcm + silence)
        else:
            # Nothing new from the user: the assistant speaks (LiveKit's greeting,
            # generate_reply(instructions=...)), on the instructions and history alone.
            response = await self._new_response(None, metadata=metadata)
            self._awaiting.append(response)
            self._spoken = True
            await self._session.request_reply(instructions or "")

    async def _response_cancel(self, event: dict[str, Any]) -> None:
        response = self._active
        wanted = event.get("response_id")
        if response is None or (wanted is not None and wanted != response.id):
            raise ProtocolError(
                "there is no response in progress to cancel", code="response_cancel_not_active"
            )
        response.cancel_reason = "client_cancelled"
        await self._session.interrupt()

    async def _truncate(self, event: dict[str, Any]) -> None:
        item_id, end_ms = event.get("item_id"), event.get("audio_end_ms")
        if not isinstance(item_id, str):
            raise ProtocolError("item_id must be a string", param="item_id")
        if not isinstance(end_ms, int) or isinstance(end_ms, bool) or end_ms < 0:
            raise ProtocolError("audio_end_ms must be a non-negative integer", param="audio_end_ms")
        if event.get("content_index", 0) != 0:
            raise ProtocolError(
                "an assistant item has one audio part: content_index 0", param="content_index"
            )
        response = next((r for r in self._turns.values() if r.item_id == item_id), None)
        status = self._done_items.get(item_id)
        if response is None or response.turn_id is None:
            raise ProtocolError(f"no assistant item {item_id!r} in this conversation", param="item_id")
        sent_ms = response.extras.get("voxmesh", {}).get("reply_audio_ms")
        if status == "completed" and sent_ms is not None and end_ms >= sent_ms - _LAST_FRAME_MS:
            # Cut at its end: nothing to cut, the history holds what was all heard.
            # Pipecat sends this when the user speaks just as a reply finished playing.
            await self._emit(
                "conversation.item.truncated", item_id=item_id, content_index=0, audio_end_ms=end_ms
            )
            return
        if status != "incomplete":
            # The gateway cuts only its latest turn: an older reply is in the history in full.
            if response.turn_id != max([*self._turns, *self._speech_items]):
                raise unsupported(
                    "audio_end_ms",
                    "truncating a reply before the latest one (the gateway kept all of it in the history)",
                )
            interrupted = await self._cut_at(response, end_ms)
            await self._emit(
                "conversation.item.truncated",
                item_id=item_id,
                content_index=0,
                audio_end_ms=end_ms,
                voxmesh={
                    "spoken_text": interrupted.spoken_text,
                    "played_ms": round(interrupted.played_ms, 1),
                },
            )
            return
        # Already cut (a barge-in, a cancel): the history kept what was heard then.
        await self._emit("conversation.item.truncated", item_id=item_id, content_index=0, audio_end_ms=end_ms)

    async def _delete(self, event: dict[str, Any]) -> None:
        """Delete an item from the conversation the client sees.

        A user text item not answered yet is dropped for good. Anything already
        said or heard stays in the gateway's history (a reply as far as it was
        heard: a barge-in or truncate cut it already); the delete is answered,
        and a later create under the same id is that item back, not a new turn.
        LiveKit updates an item by deleting and re-creating it, after every
        interruption and whenever its copy of an item differs from the server's.
        """
        item_id = event.get("item_id")
        if not isinstance(item_id, str):
            raise ProtocolError("item_id must be a string", param="item_id")
        if item_id not in self._items:
            raise ProtocolError(f"no item {item_id!r} in this conversation", param="item_id")
        pending = [entry for entry in self._pending_text if entry[0] != item_id]
        if len(pending) == len(self._pending_text):
            self._deleted.add(item_id)
        self._pending_text = pending
        self._items.discard(item_id)
        await self._emit("conversation.item.deleted", item_id=item_id)

    async def _cut_at(self, response: Response, end_ms: int) -> Interrupted:
        """Interrupt ``response``'s turn with the client's playback position: the gateway keeps
        in history the reply up to the word playing at ``end_ms`` (PlaybackPosition).
        """
        assert response.turn_id is not None
        cut: asyncio.Future[Interrupted] = asyncio.get_running_loop().create_future()
        self._truncating[response.turn_id] = cut
        if response is self._active:
            response.cancel_reason = "client_cancelled"
        try:
            # Capped: a huge integer is valid JSON but no float; the gateway caps at what it sent anyway.
            await self._session.report_playback(response.turn_id, float(min(end_ms, 2**53)))
            await self._session.interrupt()
            async with asyncio.timeout(TRUNCATE_WAIT_S):
                return await cut
        except TimeoutError:
            raise unsupported(
                "audio_end_ms",
                "truncating a reply that had played in full by the gateway's playout clock "
                "(the history keeps all of it)",
            ) from None
        finally:
            self._truncating.pop(response.turn_id, None)

    # --------------------------------------------------------- gateway events

    async def _pump_events(self, session: AsyncSession) -> None:
        try:
            async for event in session.events():
                await self._on_gateway(event)
        except VoxmeshClientError as exc:
            await self.send_error(
                ProtocolError(
                    f"gateway: {exc.code}: {exc.message}", code=exc.code.lower(), error_type="server_error"
                ),
                None,
            )

    async def _on_gateway(self, event: Event) -> None:
        if isinstance(event, SessionStarted):
            return
        if isinstance(event, SpeechStarted):
            item_id = self._claim_user_item(event.turn_id)
            if self.config.server_vad:
                await self._emit(
                    "input_audio_buffer.speech_started",
                    audio_start_ms=int(event.audio_offset_ms),
                    item_id=item_id,
                )
        elif isinstance(event, SpeechEnded):
            item_id = self._claim_user_item(event.turn_id)
            if self.config.server_vad:
                await self._emit(
                    "input_audio_buffer.speech_stopped",
                    audio_end_ms=int(event.endpoint_offset_ms),
                    item_id=item_id,
                )
                await self._emit(
                    "input_audio_buffer.committed", item_id=item_id, previous_item_id=self._last_item
                )
                await self._item_added(user_audio_item(item_id))
                if self._active is None and event.turn_id not in self._turns:
                    self._turns[event.turn_id] = await self._new_response(item_id, turn_id=event.turn_id)
        elif isinstance(event, Transcript):
            await self._on_transcript(event)
        elif isinstance(event, ReplyText):
            response = await self._response_for(event.turn_id)
            await self._ensure_item(response)
            response.transcript += event.delta
            await self._emit(
                "response.output_audio_transcript.delta", **part_events(response), delta=event.delta
            )
        elif isinstance(event, AudioOut):
            response = await self._response_for(event.turn_id)
            await self._ensure_item(response)
            await self._emit(
                "response.output_audio.delta",
                **part_events(response),
                delta=self.config.output_format.encode(event.pcm),
            )
        elif isinstance(event, TurnComplete):
            response = await self._response_for(event.turn_id)
            response.transcript = event.reply_text or response.transcript
            response.extras["voxmesh"] = {
                "latency_ms": latency_ms(event.latency),
                "reply_audio_ms": round(event.reply_audio_ms, 1),
                "transcript": event.transcript,
            }
            await self._finish(response, "completed", None)
        elif isinstance(event, Interrupted):
            cut = self._turns.get(event.turn_id)
            if cut is not None and self._done_items.get(cut.item_id) == "completed":
                # Generated in full but cut while the client still played it (a
                # barge-in): the gateway kept only what its playout clock says
                # was heard, so a truncate of this item is now true, not refused.
                self._done_items[cut.item_id] = "incomplete"
            elif cut is not None and cut is self._active:
                cut.transcript = event.spoken_text
                cut.extras["voxmesh"] = {
                    "audio_sent_ms": round(event.audio_sent_ms, 1),
                    "played_ms": round(event.played_ms, 1),
                }
                await self._finish(cut, "cancelled", {"type": "cancelled", "reason": cut.cancel_reason})
            if (waiting := self._truncating.get(event.turn_id)) is not None and not waiting.done():
                waiting.set_result(event)
        elif isinstance(event, StageError):
            await self._on_stage_error(event)
        elif isinstance(event, ToolCall):
            await self._on_tool_call(event)
        elif isinstance(event, ToolCallCancelled):
            if self._calls.cancel(event.call_id) is not None:
                await self._warn(
                    "function_call_cancelled",
                    f"function call {event.call_id} was cancelled ({event.reason}): do not run it; "
                    "an output sent for it is refused",
                    "item.call_id",
                )

    async def _on_tool_call(self, call: ToolCall) -> None:
        """A function_call item in the turn's response; the response is done once the round's calls are in."""
        response = await self._response_for(call.turn_id)
        item_id = self._ids.new("item")
        index = (1 if response.item_added else 0) + len(response.function_calls)
        ids = {"response_id": response.id, "item_id": item_id, "output_index": index, "call_id": call.call_id}
        started = function_call_item(call, item_id, "in_progress")
        await self._emit(
            "response.output_item.added", response_id=response.id, output_index=index, item=started
        )
        await self._item_added(started)
        # voxmesh parses a call whole (never half a call), so its arguments come as one delta.
        arguments = arguments_text(call)
        await self._emit("response.function_call_arguments.delta", **ids, delta=arguments)
        await self._emit("response.function_call_arguments.done", **ids, name=call.name, arguments=arguments)
        done = function_call_item(call, item_id, "completed")
        await self._emit("response.output_item.done", response_id=response.id, output_index=index, item=done)
        await self._emit("conversation.item.done", item=done, previous_item_id=None)
        response.function_calls.append(done)
        if self._calls.called(call, item_id):
            # The reply waits on its calls; it goes on in the response.create after their outputs.
            await self._finish(response, "completed", None)
            self._turns.pop(call.turn_id, None)

    async def _function_call_output(self, item: dict[str, Any]) -> None:
        call_id, output = output_of(item)
        self._calls.output(call_id)
        await self._session.send_tool_result(call_id, output)
        item_id = item.get("id") if isinstance(item.get("id"), str) else None
        added = function_call_output_item(item_id or self._ids.new("item"), call_id, output)
        await self._item_added(added)
        await self._emit("conversation.item.done", item=added, previous_item_id=None)

    async def _on_transcript(self, event: Transcript) -> None:
        item_id = self._claim_user_item(event.turn_id)
        before = self._partial.get(event.turn_id, "")
        if event.is_final:
            self._partial.pop(event.turn_id, None)
            await self._emit(
                "conversation.item.input_audio_transcription.completed",
                item_id=item_id,
                content_index=0,
                transcript=event.text,
                usage={"type": "duration", "seconds": 0},
            )
            return
        # voxmesh partials are the whole transcript so far; Realtime deltas append.
        # A partial that rewrites earlier words is skipped: the completed event corrects it.
        if event.text.startswith(before) and len(event.text) > len(before):
            self._partial[event.turn_id] = event.text
            await self._emit(
                "conversation.item.input_audio_transcription.delta",
                item_id=item_id,
                content_index=0,
                delta=event.text[len(before) :],
            )

    async def _on_stage_error(self, event: StageError) -> None:
        code = event.code.lower()
        if code == "no_speech":
            # A cough or noise taken for speech: no words, so no reply. Nothing the
            # client did wrong, and Pipecat ends its connection on any error event.
            await self._warn(code, f"{event.stage}: {event.message}", "audio")
            unheard = self._turns.get(event.turn_id)
            if unheard is not None and unheard is self._active:
                await self._finish(unheard, "incomplete", {"type": "incomplete", "reason": "no_speech"})
            return
        await self.send_error(
            ProtocolError(f"{event.stage}: {event.message}", code=code, error_type="server_error"), None
        )
        failed = self._turns.get(event.turn_id)
        if failed is not None and failed is self._active:
            await self._finish(
                failed,
                "failed",
                {"type": "failed", "error": {"type": "server_error", "code": code, "message": event.message}},
            )

    # ---------------------------------------------------------------- turns

    def _claim_user_item(self, turn_id: int) -> str:
        """The user item of a gateway turn: an awaited response's, or a new one for a VAD turn."""
        if turn_id in self._speech_items:
            return self._speech_items[turn_id]
        if turn_id not in self._turns and self._awaiting:
            claimed = self._awaiting.popleft()
            claimed.turn_id = turn_id
            self._turns[turn_id] = claimed
        response = self._turns.get(turn_id)
        item_id = response.user_item_id if response and response.user_item_id else self._ids.new("item")
        self._speech_items[turn_id] = item_id
        return item_id

    async def _response_for(self, turn_id: int) -> Response:
        self._claim_user_item(turn_id)
        response = self._turns.get(turn_id)
        if response is None:
            # A reply for a turn the edge saw no endpoint of (e.g. the gateway's end of input).
            response = await self._new_response(self._speech_items[turn_id], turn_id=turn_id)
            self._turns[turn_id] = response
        return response

    async def _new_response(
        self, user_item_id: str | None, turn_id: int | None = None, metadata: dict[str, str] | None = None
    ) -> Response:
        response = Response(
            self._ids.new("resp"), self._ids.new("item"), user_item_id, turn_id, metadata=metadata
        )
        self._active = response
        await self._emit("response.created", response=response.body("in_progress"))
        return response

    async def _item_added(self, item: dict[str, Any]) -> None:
        await self._emit("conversation.item.added", item=item, previous_item_id=self._last_item)
        self._last_item = item["id"]
        self._items.add(item["id"])

    async def _ensure_item(self, response: Response) -> None:
        if response.item_added:
            return
        response.item_added = True
        await self._emit(
            "response.output_item.added",
            response_id=response.id,
            output_index=0,
            item=response.item("in_progress"),
        )
        await self._item_added(response.item("in_progress"))
        await self._emit(
            "response.content_part.added", **part_events(response), part={"type": "audio", "transcript": ""}
        )

    async def _finish(self, response: Response, status: str, details: dict[str, Any] | None) -> None:
        if response.item_added:
            item_status = "completed" if status == "completed" else "incomplete"
            await self._emit("response.output_audio.done", **part_events(response))
            await self._emit(
                "response.output_audio_transcript.done",
                **part_events(response),
                transcript=response.transcript,
            )
            await self._emit(
                "response.content_part.done",
                **part_events(response),
                part={"type": "audio", "transcript": response.transcript},
            )
            await self._emit(
                "response.output_item.done",
                response_id=response.id,
                output_index=0,
                item=response.item(item_status),
            )
            await self._emit("conversation.item.done", item=response.item(item_status), previous_item_id=None)
            self._done_items[response.item_id] = item_status
        await self._emit("response.done", response=response.body(status, details))
        metrics.RESPONSES.labels(status).inc()
        if self._active is response:
            self._active = None


_HANDLERS: dict[str, Callable[[RealtimeConnection, dict[str, Any]], Awaitable[None]]] = {
    "session.update": RealtimeConnection._session_update,
    "input_audio_buffer.append": RealtimeConnection._append,
    "input_audio_buffer.commit": RealtimeConnection._commit,
    "input_audio_buffer.clear": RealtimeConnection._clear,
    "conversation.item.create": RealtimeConnection._item_create,
    "response.create": RealtimeConnection._response_create,
    "response.cancel": RealtimeConnection._response_cancel,
    "conversation.item.truncate": RealtimeConnection._truncate,
    "conversation.item.delete": RealtimeConnection._delete,
}
#: Client events of the GA protocol voxmesh has no counterpart for.
_UNSUPPORTED = {
    "conversation.item.retrieve",
    "output_audio_buffer.clear",
    "transcription_session.update",
}
