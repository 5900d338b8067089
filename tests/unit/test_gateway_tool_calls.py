"""gateway.tool_calls: the tool-call policy, its checks, and its races as a property test.

The property test drives the policy the way the session does (gateway.session
dispatches vad's and voxtral's events to it and carries out its Effects),
with hypothesis choosing the order: pauses that start a tentative reply,
calls made in it or after the endpoint, speech that resumes, barge-ins,
results before, during and after cancellation, time passing past the result
timeout, ReplyRequests, and the session's end. The CPU-mesh version of the
same races is tests/integration/test_mesh_tool_call_races.py.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voxmesh.errors import InvalidArgument
from voxmesh.gateway.tool_calls import INTERRUPTED, Effects, ToolCalls, declared_tools
from voxmesh.v1 import common_pb2, conversation_pb2, voxtral_pb2

WEATHER = common_pb2.Tool(
    name="weather",
    parameters_json=json.dumps(
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    ),
)
TIMEOUT_S = 5.0


def policy(wait_for_reply: bool = False) -> ToolCalls:
    config = conversation_pb2.SessionConfig(tools=[WEATHER], tools_wait_for_reply=wait_for_reply)
    return ToolCalls(declared_tools(config), TIMEOUT_S)


def calls(stage_turn_id: int, *ids: str, arguments: str = '{"city": "Paris"}') -> voxtral_pb2.ReplyToolCalls:
    return voxtral_pb2.ReplyToolCalls(
        turn_id=stage_turn_id,
        calls=[voxtral_pb2.ReplyToolCall(call_id=i, name="weather", arguments_json=arguments) for i in ids],
    )


def result(call_id: str, output: str = "sunny") -> common_pb2.ToolResult:
    return common_pb2.ToolResult(call_id=call_id, output=output)


def sent(effects: Effects, kind: str) -> list[str]:
    return [getattr(e, kind).call_id for e in effects.to_client if e.WhichOneof("event") == kind]


# ------------------------------------------------------------------ examples


def test_a_round_goes_to_voxtral_once_every_call_is_answered() -> None:
    tools = policy()
    made = tools.made(1, 1, calls(1, "a", "b"), now=0.0)
    assert sent(made, "tool_call") == ["a", "b"] and not made.to_voxtral
    assert not tools.result(result("b", "rain"), now=0.1).to_voxtral  # order of answers is free
    (round_,) = tools.result(result("a"), now=0.2).to_voxtral
    # The results go in call order, whatever order they came in.
    assert [(r.call_id, r.output) for r in round_.results] == [("a", "sunny"), ("b", "rain")]
    assert [e.call_id for e in tools.history(1)] == ["a", "b"] and tools.outstanding == 0


def test_arguments_that_do_not_match_the_schema_never_reach_the_client() -> None:
    tools = policy()
    made = tools.made(1, 1, calls(1, "a", arguments='{"town": 3}'), now=0.0)
    assert not sent(made, "tool_call")
    (field_name, reason), *_ = made.refused
    assert field_name == "tool_call.arguments_json" and "'city' is a required property" in reason
    # The reply is told at once, so it goes on without the client.
    (round_,) = made.to_voxtral
    assert round_.results[0].error.startswith("arguments do not match")


def test_a_held_call_is_sent_only_when_its_turn_is_confirmed() -> None:
    tools = policy()
    tools.hold(1, calls(1, "a"))
    assert tools.held == 1 and tools.outstanding == 0
    assert tools.discard(1) == 1 and tools.held == 0  # the user spoke on: never sent
    tools.hold(2, calls(2, "b"))
    assert sent(tools.made(1, 2, calls(2, "b"), now=0.0), "tool_call") == ["b"]  # released at the endpoint
    assert tools.held == 0 and tools.outstanding == 1


def test_a_result_after_the_barge_in_is_refused_and_never_kept() -> None:
    tools = policy()
    tools.made(1, 1, calls(1, "a"), now=0.0)
    cancelled = tools.cancel_turn(1, INTERRUPTED)
    assert sent(cancelled, "tool_call_cancelled") == ["a"]
    late = tools.result(result("a"), now=1.0)
    assert not late.to_voxtral and late.refused[0][0] == "tool_result.call_id"
    assert "cancelled" in late.refused[0][1] and tools.history(1) == []


def test_a_result_that_never_comes_times_out_into_an_error_for_the_reply() -> None:
    tools = policy()
    tools.made(1, 1, calls(1, "a"), now=0.0)
    assert not tools.expired(TIMEOUT_S - 0.01).to_client
    expired = tools.expired(TIMEOUT_S)
    assert sent(expired, "tool_call_cancelled") == ["a"]
    (round_,) = expired.to_voxtral
    assert "did not answer within 5 s" in round_.results[0].error
    assert tools.outstanding == 0


def test_with_wait_for_reply_the_results_go_on_only_at_the_reply_request() -> None:
    tools = policy(wait_for_reply=True)
    tools.made(1, 1, calls(1, "a"), now=0.0)
    assert not tools.result(result("a"), now=0.1).to_voxtral
    assert tools.waiting_for_reply and tools.awaiting(1)
    assert len(tools.continue_reply().to_voxtral) == 1 and not tools.waiting_for_reply


@pytest.mark.parametrize(
    ("tools", "choice", "field_name"),
    [
        ([common_pb2.Tool(name="a b")], "", "config.tools[0].name"),
        ([WEATHER, WEATHER], "", "config.tools[1].name"),
        ([common_pb2.Tool(name="t", parameters_json="{")], "", "config.tools[0].parameters_json"),
        ([common_pb2.Tool(name="t", parameters_json='{"type": 7}')], "", "config.tools[0].parameters_json"),
        (
            [common_pb2.Tool(name="t", parameters_json='{"type": "string"}')],
            "",
            "config.tools[0].parameters_json",
        ),
        ([common_pb2.Tool(name="t", description="x" * 1025)], "", "config.tools[0].description"),
        ([common_pb2.Tool(name=f"t{i}") for i in range(65)], "", "config.tools"),
        ([common_pb2.Tool(name=f"t{i}", parameters_json=" " * 16000) for i in range(5)], "", "config.tools"),
        ([WEATHER], "book", "config.tool_choice"),
        ([], "required", "config.tool_choice"),
    ],
)
def test_bad_declarations_name_the_field(tools: list[common_pb2.Tool], choice: str, field_name: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        declared_tools(conversation_pb2.SessionConfig(tools=tools, tool_choice=choice))
    assert refused.value.field == field_name


# ------------------------------------------------------------------ the races


@dataclass
class Harness:
    """The session's side of the tool calls: one turn at a time, as gateway.session dispatches."""

    tools: ToolCalls = field(default_factory=policy)
    now: float = 0.0
    turn_id: int = 1
    stage_turn_id: int = 1
    #: "listening", "tentative" (a reply written in the pause), "replying" (confirmed).
    phase: str = "listening"
    #: Calls the tentative reply made, held (gateway.endpointing keeps the message).
    held: list[voxtral_pb2.ReplyToolCalls] = field(default_factory=list)
    #: A round waits on the current turn (voxtral makes no more calls until it is answered).
    round_open: bool = False
    next_call: int = 0
    discarded_ids: set[str] = field(default_factory=set)
    called: dict[str, int] = field(default_factory=dict)  # call id -> turn id
    terminal: Counter[str] = field(default_factory=Counter)
    cancelled_ids: set[str] = field(default_factory=set)
    forwarded: Counter[str] = field(default_factory=Counter)
    late_outputs: set[str] = field(default_factory=set)

    def apply(self, effects: Effects) -> None:
        for event in effects.to_client:
            kind = event.WhichOneof("event")
            body = getattr(event, kind)
            if kind == "tool_call":
                assert body.call_id not in self.discarded_ids, "a discarded tentative reply's call was sent"
                assert body.call_id not in self.called
                self.called[body.call_id] = body.turn_id
            else:
                self.terminal[body.call_id] += 1
                if body.reason == INTERRUPTED or body.reason == "failed":
                    self.cancelled_ids.add(body.call_id)
        for round_ in effects.to_voxtral:
            self.round_open = False
            for r in round_.results:
                self.forwarded[r.call_id] += 1
                assert r.call_id not in self.cancelled_ids, "a cancelled call's result went to voxtral"

    # events ----------------------------------------------------------------

    def pause(self) -> None:
        if self.phase == "listening":
            self.phase = "tentative"

    def model_calls(self, n: int) -> None:
        if self.phase == "listening" or self.round_open:
            return
        ids = [f"c{self.next_call + i}" for i in range(n)]
        self.next_call += n
        message = calls(self.stage_turn_id, *ids)
        if self.phase == "tentative":
            self.tools.hold(self.stage_turn_id, message)
            self.held.append(message)
        else:
            self.round_open = True
            self.apply(self.tools.made(self.turn_id, self.stage_turn_id, message, self.now))

    def speech_resumed(self) -> None:
        if self.phase == "tentative":  # the tentative reply is dropped; a new stage attempt
            self.tools.discard(self.stage_turn_id)
            self.discarded_ids |= {c.call_id for m in self.held for c in m.calls}
            self.held.clear()
            self.stage_turn_id += 1
            self.phase = "listening"

    def endpoint(self) -> None:
        if self.phase == "tentative":
            for message in self.held:  # replayed in order at the confirmation
                self.round_open = True
                self.apply(self.tools.made(self.turn_id, self.stage_turn_id, message, self.now))
            self.held.clear()
        if self.phase in ("listening", "tentative"):
            self.phase = "replying"

    def barge_in(self) -> None:
        if self.phase == "tentative":
            self.speech_resumed()
        elif self.phase == "replying":
            self.apply(self.tools.cancel_turn(self.turn_id, INTERRUPTED))
        self.turn_id += 1
        self.stage_turn_id += 1
        self.phase, self.round_open = "listening", False

    def result(self, pick: int, output: str) -> None:
        known = [*sorted(self.called), "nope"]
        call_id = known[pick % len(known)]
        if call_id in self.cancelled_ids:
            self.late_outputs.add(output)
        effects = self.tools.result(result(call_id, output), self.now)
        if call_id in self.cancelled_ids or call_id == "nope":
            assert not effects.to_voxtral and effects.refused, "a late or unknown result changed something"
        self.apply(effects)

    def tick(self, seconds: float) -> None:
        self.now += seconds
        self.apply(self.tools.expired(self.now))

    def reply_request(self) -> None:
        self.apply(self.tools.continue_reply())


EVENTS = st.one_of(
    st.just(("pause",)),
    st.tuples(st.just("model_calls"), st.integers(1, 3)),
    st.just(("speech_resumed",)),
    st.just(("endpoint",)),
    st.just(("barge_in",)),
    st.tuples(st.just("result"), st.integers(0, 50), st.sampled_from(["sunny", "rain", "snow"])),
    st.tuples(st.just("tick"), st.sampled_from([0.01, 0.5, 2.0, TIMEOUT_S])),
    st.just(("reply_request",)),
)
#: Counted by the property test below (the issue asks for at least 200 cases).
RACE_CASES = 400


@settings(max_examples=RACE_CASES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(EVENTS, min_size=1, max_size=40), wait_for_reply=st.booleans())
def test_races_never_send_a_discarded_call_or_keep_a_cancelled_result(
    events: list[tuple[object, ...]], wait_for_reply: bool
) -> None:
    harness = Harness(tools=policy(wait_for_reply))
    for name, *args in events:
        getattr(harness, str(name))(*args)
    harness.tools.close()  # the session ends
    tools = harness.tools
    assert tools.outstanding == 0 and tools.held == 0  # nothing stays in progress
    # Every call sent ended once at most by a cancel, and never both answered and cancelled.
    assert all(n == 1 for n in harness.terminal.values())
    assert all(n == 1 for n in harness.forwarded.values())
    assert not (set(harness.forwarded) & harness.cancelled_ids)
    # No result of a cancelled call is in any turn's history.
    for turn_id in range(1, harness.turn_id + 1):
        kept = tools.history(turn_id)
        assert not ({e.call_id for e in kept} & harness.cancelled_ids)
        assert all(e.call_id in harness.forwarded for e in kept)


def test_a_timed_out_round_goes_on_even_when_results_wait_for_a_reply_request() -> None:
    tools = policy(wait_for_reply=True)
    made = tools.made(1, 1, calls(1, "a", "b"), now=0.0)
    assert [e.tool_call.calls_in_round for e in made.to_client] == [2, 2]
    tools.result(result("a"), now=0.1)
    # A client that never answered will not ask for the reply either: nothing stays in progress.
    assert len(tools.expired(TIMEOUT_S).to_voxtral) == 1 and not tools.waiting_for_reply
