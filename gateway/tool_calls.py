"""Tool calls, bound to the turn that made them: the session's policy and its transitions.

A reply may end in tool calls (voxtral's ``ReplyToolCalls``, parsed whole once
the model finished them). What happens to them is decided here; the session
only dispatches events in and carries out the :class:`Effects` that come back.

::

    made in a tentative reply ── held (gateway.endpointing keeps the message)
        ├─ endpoint confirms the turn ──▶ made (below)
        └─ the user speaks on ──────────▶ discarded: never reaches the client

    made ──▶ arguments match the tool's schema? ── no ─▶ answered at once with an error
               │ yes                                      (the client never sees it)
               ▼
           OUTSTANDING (ToolCall sent) ─┬─ ToolResult ─────────────▶ ANSWERED
                                        ├─ barge-in / turn fails ──▶ CANCELLED (ToolCallCancelled)
                                        ├─ session ends ───────────▶ CANCELLED
                                        └─ --tool-result-timeout-s ▶ TIMED_OUT (ToolCallCancelled,
                                                                      answered with an error)

When every call of a round is answered (or timed out), the round's results go
to voxtral and the reply goes on, on the same turn; with
``SessionConfig.tools_wait_for_reply`` they wait for the client's
``ReplyRequest`` (OpenAI Realtime's response.create). A result for a call
that is cancelled, answered or unknown is refused (an ``Error`` naming
``tool_result.call_id``) and changes nothing: a late result never reaches
voxtral, so it never enters the history. The history keeps only rounds whose
results went to voxtral.

Why a tentative reply's calls wait: the peers ran tools from generations the
user never heard (pipecat#4997, livekit/agents#5924); here a call leaves the
gateway only for a turn the user will hear.
"""

from __future__ import annotations

import json
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from voxmesh import logs
from voxmesh.errors import InvalidArgument
from voxmesh.metrics import TOOL_CALLS, TOOL_RESULT_LATENCY
from voxmesh.v1 import common_pb2, conversation_pb2, voxtral_pb2

log = logging.getLogger(__name__)

MAX_TOOLS = 64
#: All of a session's tools together (names, descriptions, schemas), in bytes.
MAX_TOOLS_BYTES = 64 * 1024
MAX_SCHEMA_BYTES = 16 * 1024
MAX_DESCRIPTION_CHARS = 1024
#: A ToolResult's output or error, in characters.
MAX_RESULT_CHARS = 16 * 1024
#: Closed call ids remembered, to tell a late result from an unknown one.
_CLOSED_REMEMBERED = 1024
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CHOICES = ("auto", "none", "required")
#: ToolCallCancelled.reason values.
INTERRUPTED, TIMED_OUT, FAILED = "interrupted", "timed_out", "failed"


@dataclass(frozen=True)
class DeclaredTools:
    """SessionConfig's tools, checked: their schemas compiled once."""

    tools: tuple[common_pb2.Tool, ...] = ()
    choice: str = "auto"
    wait_for_reply: bool = False
    validators: tuple[tuple[str, Any], ...] = ()

    def validator(self, name: str) -> Any | None:
        return next((v for n, v in self.validators if n == name), None)


def declared_tools(config: conversation_pb2.SessionConfig) -> DeclaredTools:
    """Check ``config.tools`` / ``tool_choice``; raises InvalidArgument naming the field."""
    if len(config.tools) > MAX_TOOLS:
        raise InvalidArgument("config.tools", f"{len(config.tools)} tools; at most {MAX_TOOLS}")
    total = sum(
        len(t.name) + len(t.description.encode()) + len(t.parameters_json.encode()) for t in config.tools
    )
    if total > MAX_TOOLS_BYTES:
        raise InvalidArgument("config.tools", f"{total} bytes of tools; at most {MAX_TOOLS_BYTES}")
    validators: list[tuple[str, Any]] = []
    for i, tool in enumerate(config.tools):
        where = f"config.tools[{i}]"
        if not _NAME.match(tool.name):
            raise InvalidArgument(f"{where}.name", f"{tool.name!r}: 1-64 characters of A-Z, a-z, 0-9, _ or -")
        if any(n == tool.name for n, _ in validators):
            raise InvalidArgument(f"{where}.name", f"{tool.name!r} is declared twice")
        if len(tool.description) > MAX_DESCRIPTION_CHARS:
            raise InvalidArgument(f"{where}.description", f"longer than {MAX_DESCRIPTION_CHARS} characters")
        if len(tool.parameters_json.encode()) > MAX_SCHEMA_BYTES:
            raise InvalidArgument(f"{where}.parameters_json", f"longer than {MAX_SCHEMA_BYTES} bytes")
        validators.append((tool.name, _schema_validator(tool.parameters_json, f"{where}.parameters_json")))
    choice = config.tool_choice or "auto"
    if choice not in _CHOICES and not any(n == choice for n, _ in validators):
        raise InvalidArgument(
            "config.tool_choice", f"{choice!r}: use auto, none, required or a declared tool's name"
        )
    if choice == "required" and not config.tools:
        raise InvalidArgument("config.tool_choice", "required, but no tools are declared")
    return DeclaredTools(tuple(config.tools), choice, config.tools_wait_for_reply, tuple(validators))


def _schema_validator(text: str, field_name: str) -> Any:
    try:
        schema = json.loads(text) if text else {"type": "object"}
    except ValueError as exc:
        raise InvalidArgument(field_name, f"not JSON: {exc}") from exc
    if not isinstance(schema, dict):
        raise InvalidArgument(field_name, "a JSON Schema object is expected")
    if schema.get("type", "object") != "object":
        raise InvalidArgument(field_name, 'the arguments are an object: the schema\'s type must be "object"')
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise InvalidArgument(field_name, f"not a valid JSON Schema: {exc.message}") from exc
    return Draft202012Validator(schema)


@dataclass
class Effects:
    """What the session carries out after a transition, in this order."""

    #: ToolCall / ToolCallCancelled events for the client.
    to_client: list[conversation_pb2.ConverseResponse] = field(default_factory=list)
    #: Refusals for the client: (field, message), sent as Error INVALID_ARGUMENT.
    refused: list[tuple[str, str]] = field(default_factory=list)
    #: A finished round's results, for voxtral: the reply goes on.
    to_voxtral: list[voxtral_pb2.ToolResults] = field(default_factory=list)

    def __iadd__(self, other: Effects) -> Effects:
        self.to_client += other.to_client
        self.refused += other.refused
        self.to_voxtral += other.to_voxtral
        return self


@dataclass
class _Call:
    call: conversation_pb2.ToolCall
    sent_at: float
    deadline: float


@dataclass
class _Round:
    """One ReplyToolCalls of a turn: its calls, in order, and the results so far."""

    turn_id: int
    stage_turn_id: int
    order: list[voxtral_pb2.ReplyToolCall]
    results: dict[str, common_pb2.ToolResult] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return len(self.results) == len(self.order)

    def message(self) -> voxtral_pb2.ToolResults:
        return voxtral_pb2.ToolResults(
            turn_id=self.stage_turn_id, results=[self.results[c.call_id] for c in self.order]
        )


class ToolCalls:
    """One session's tool calls: held, outstanding, answered, cancelled, timed out."""

    def __init__(self, declared: DeclaredTools, result_timeout_s: float) -> None:
        self.declared = declared
        self.result_timeout_s = result_timeout_s
        #: Calls held in tentative replies, by stage turn id (gateway.endpointing keeps the messages).
        self._held: dict[int, int] = {}
        #: Calls sent to the client and not answered yet, by call id.
        self._outstanding: dict[str, _Call] = {}
        #: Rounds waiting for results, by stage turn id (one per turn at a time).
        self._rounds: dict[int, _Round] = {}
        #: Complete rounds waiting for the client's ReplyRequest (tools_wait_for_reply).
        self._ready: list[_Round] = []
        #: Rounds whose results went to voxtral, by client turn id: what the history keeps.
        self._answered: dict[int, list[_Round]] = {}
        #: Call ids no longer open, with why (a later result for one is refused, not unknown).
        self._closed: OrderedDict[str, str] = OrderedDict()

    # ------------------------------------------------------------ reading

    @property
    def outstanding(self) -> int:
        return len(self._outstanding)

    @property
    def held(self) -> int:
        return sum(self._held.values())

    def awaiting(self, stage_turn_id: int) -> bool:
        """The turn's reply waits on its calls (no stage owes an answer meanwhile)."""
        return stage_turn_id in self._rounds or any(r.stage_turn_id == stage_turn_id for r in self._ready)

    @property
    def waiting_for_reply(self) -> bool:
        """A round is answered and waits for the client's ReplyRequest."""
        return bool(self._ready)

    def history(self, turn_id: int) -> list[voxtral_pb2.ToolExchange]:
        """The turn's answered calls with their results, in call order (cancelled ones are not kept)."""
        return [
            voxtral_pb2.ToolExchange(
                call_id=c.call_id, name=c.name, arguments_json=c.arguments_json, result=r.results[c.call_id]
            )
            for r in self._answered.get(turn_id, [])
            for c in r.order
        ]

    # -------------------------------------------------------- transitions

    def hold(self, stage_turn_id: int, message: voxtral_pb2.ReplyToolCalls) -> None:
        """Calls made in a tentative reply: held with it until the endpoint (never sent before)."""
        self._held[stage_turn_id] = self._held.get(stage_turn_id, 0) + len(message.calls)
        TOOL_CALLS.labels("held").inc(len(message.calls))

    def discard(self, stage_turn_id: int) -> int:
        """The tentative reply was dropped (the user spoke on): its held calls are gone. Returns how many."""
        dropped = self._held.pop(stage_turn_id, 0)
        if dropped:
            TOOL_CALLS.labels("discarded").inc(dropped)
            log.info("tool calls of a tentative reply discarded", extra=logs.fields(calls=dropped))
        return dropped

    def made(
        self, turn_id: int, stage_turn_id: int, message: voxtral_pb2.ReplyToolCalls, now: float
    ) -> Effects:
        """A heard turn's reply made calls (at once, or released at its endpoint): send them."""
        self._held.pop(stage_turn_id, None)
        # Earlier turns' answered rounds are in the conversation history already (and a
        # barge-in on one comes before a later turn's calls): kept no longer, so a long
        # session holds only the current turn's.
        self._answered = {t: rounds for t, rounds in self._answered.items() if t >= turn_id}
        effects = Effects()
        round_ = _Round(turn_id, stage_turn_id, list(message.calls))
        self._rounds[stage_turn_id] = round_
        for call in message.calls:
            problem = self._check_arguments(call)
            if problem is not None:
                # The model's fault, not the client's: the call is never run, the reply is told why.
                TOOL_CALLS.labels("invalid_arguments").inc()
                round_.results[call.call_id] = common_pb2.ToolResult(call_id=call.call_id, error=problem)
                self._close(call.call_id, "invalid_arguments")
                effects.refused.append(("tool_call.arguments_json", f"{call.name}: {problem}"))
                continue
            event = conversation_pb2.ToolCall(
                turn_id=turn_id, call_id=call.call_id, name=call.name, arguments_json=call.arguments_json
            )
            self._outstanding[call.call_id] = _Call(event, now, now + self.result_timeout_s)
            TOOL_CALLS.labels("called").inc()
            effects.to_client.append(conversation_pb2.ConverseResponse(tool_call=event))
        for sent in effects.to_client:
            sent.tool_call.calls_in_round = len(effects.to_client)
        effects += self._finish(round_)
        return effects

    def result(self, result: common_pb2.ToolResult, now: float) -> Effects:
        """The client answered a call. A bad result is refused and changes nothing."""
        effects = Effects()
        call_id = result.call_id
        for name, value in (("output", result.output), ("error", result.error)):
            if len(value) > MAX_RESULT_CHARS:
                effects.refused.append((f"tool_result.{name}", f"longer than {MAX_RESULT_CHARS} characters"))
                return effects
        pending = self._outstanding.get(call_id)
        if pending is None:
            why = self._closed.get(call_id)
            TOOL_CALLS.labels("refused_result").inc()
            effects.refused.append(
                (
                    "tool_result.call_id",
                    f"call {call_id!r} is {why}: its result is ignored"
                    if why is not None
                    else f"no call {call_id!r} was made in this session",
                )
            )
            return effects
        del self._outstanding[call_id]
        self._close(call_id, "answered")
        TOOL_CALLS.labels("answered").inc()
        TOOL_RESULT_LATENCY.observe(max(0.0, now - pending.sent_at))
        round_ = self._round_of(call_id)
        if round_ is not None:
            round_.results[call_id] = common_pb2.ToolResult(
                call_id=call_id, output=result.output, error=result.error
            )
            effects += self._finish(round_)
        return effects

    def expired(self, now: float) -> Effects:
        """Calls whose result did not come in time: cancelled at the client, answered with an error."""
        effects = Effects()
        for call_id, pending in list(self._outstanding.items()):
            if now < pending.deadline:
                continue
            del self._outstanding[call_id]
            self._close(call_id, TIMED_OUT)
            TOOL_CALLS.labels(TIMED_OUT).inc()
            log.info(
                "tool call timed out", extra=logs.fields(turn_id=pending.call.turn_id, tool=pending.call.name)
            )
            effects.to_client.append(self._cancelled(pending.call, TIMED_OUT))
            round_ = self._round_of(call_id)
            if round_ is not None:
                round_.results[call_id] = common_pb2.ToolResult(
                    call_id=call_id,
                    error=f"the tool did not answer within {self.result_timeout_s:g} s",
                )
                # Not even tools_wait_for_reply holds it: a client that never answered
                # will not ask for the reply either, and nothing may stay in progress.
                effects += self._finish(round_, waits=False)
        return effects

    def continue_reply(self) -> Effects:
        """The client's ReplyRequest (tools_wait_for_reply): answered rounds go to voxtral."""
        effects = Effects()
        ready, self._ready = self._ready, []
        for round_ in ready:
            effects += self._release(round_)
        return effects

    def cancel_turn(self, turn_id: int, reason: str) -> Effects:
        """The turn ended (barge-in, a typed turn, a failed stage): its open calls are cancelled."""
        effects = Effects()
        for call_id, pending in list(self._outstanding.items()):
            if pending.call.turn_id != turn_id:
                continue
            del self._outstanding[call_id]
            self._close(call_id, "cancelled")
            TOOL_CALLS.labels("cancelled").inc()
            effects.to_client.append(self._cancelled(pending.call, reason))
        self._rounds = {k: r for k, r in self._rounds.items() if r.turn_id != turn_id}
        self._ready = [r for r in self._ready if r.turn_id != turn_id]
        if effects.to_client:
            log.info(
                "tool calls cancelled",
                extra=logs.fields(turn_id=turn_id, calls=len(effects.to_client), reason=reason),
            )
        return effects

    def close(self) -> int:
        """The session ended: nothing stays in progress. Returns the calls cancelled."""
        cancelled = len(self._outstanding)
        for call_id in list(self._outstanding):
            self._close(call_id, "cancelled")
        TOOL_CALLS.labels("cancelled").inc(cancelled)
        self._outstanding.clear()
        self._rounds.clear()
        self._ready.clear()
        for stage_turn_id in list(self._held):
            self.discard(stage_turn_id)
        return cancelled

    # ------------------------------------------------------------ helpers

    def _check_arguments(self, call: voxtral_pb2.ReplyToolCall) -> str | None:
        validator = self.declared.validator(call.name)
        if validator is None:
            return f"no tool named {call.name!r} is declared"
        try:
            arguments = json.loads(call.arguments_json or "{}")
        except ValueError as exc:
            return f"arguments are not JSON: {exc}"
        errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))
        if errors:
            return f"arguments do not match the tool's parameters: {errors[0].message}"
        return None

    def _finish(self, round_: _Round, waits: bool = True) -> Effects:
        if not round_.complete:
            return Effects()
        self._rounds.pop(round_.stage_turn_id, None)
        if self.declared.wait_for_reply and waits:
            self._ready.append(round_)
            return Effects()
        return self._release(round_)

    def _release(self, round_: _Round) -> Effects:
        self._answered.setdefault(round_.turn_id, []).append(round_)
        return Effects(to_voxtral=[round_.message()])

    def _round_of(self, call_id: str) -> _Round | None:
        return next((r for r in self._rounds.values() if any(c.call_id == call_id for c in r.order)), None)

    def _close(self, call_id: str, why: str) -> None:
        self._closed[call_id] = why
        while len(self._closed) > _CLOSED_REMEMBERED:
            self._closed.popitem(last=False)

    @staticmethod
    def _cancelled(call: conversation_pb2.ToolCall, reason: str) -> conversation_pb2.ConverseResponse:
        return conversation_pb2.ConverseResponse(
            tool_call_cancelled=conversation_pb2.ToolCallCancelled(
                turn_id=call.turn_id, call_id=call.call_id, reason=reason
            )
        )
