"""The tool-call races on the CPU mesh, as real processes, with hypothesis choosing the timing.

Each case speaks "What is the weather in Paris?" (Piper: pocketsphinx hears it
word for word, and the echo's stand-in rule calls ``weather``), pauses long
(0.05-0.4 s, with Piper's own trailing silence around the gateway's 200 ms) for
the gateway to start a tentative reply (whose call is then held),
and either stops (the endpoint confirms the turn and releases the call) or
speaks on ("And in Rome?": the tentative reply and its held call are
dropped, the whole utterance is answered). Then, at a random delay after the
ToolCall, the client answers, or barges in (speech, Control.INTERRUPT or a
typed turn) and maybe answers after the cancel, or never answers (the gateway's
2 s result timeout). Asserted on every case: no ToolCall before its turn's
endpoint (none from a tentative reply), one call per turn, every call ends
exactly once (its result taken, or cancelled), a late result is refused, and
at the session's end the gateway's counters balance: nothing is left
outstanding. The policy's own property test (tests/unit/test_gateway_tool_calls.py)
runs hundreds of event orders; this one proves the wiring with real timing.
"""

from __future__ import annotations

import asyncio
import functools
import re
import urllib.request
from collections.abc import Callable

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import Mesh
from tests.integration.tool_session import ToolSession, config
from tests.piper_speech import piper_speak
from voxmesh.processes import free_port
from voxmesh.synthetic_speech import silence
from voxmesh.v1 import conversation_pb2

RATE = 16_000
#: Real-mesh cases, run CONCURRENT sessions at a time (each speaks at real time: ~5-10 s), so the
#: 200 cases take ~25 rounds; the policy's property test runs 400 orders besides.
MESH_CASES = 200
CONCURRENT = 8
#: The gateway's --tool-result-timeout-s here.
TIMEOUT_S = 2.0


@functools.cache
def _speech(text: str) -> np.ndarray:
    return piper_speak(text, RATE)


@pytest.fixture
def race_mesh(start_mesh: Callable[..., Mesh]) -> tuple[Mesh, int]:
    port = free_port()
    mesh = start_mesh(gateway_args=("--tool-result-timeout-s", str(TIMEOUT_S), "--metrics-port", str(port)))
    return mesh, port


def tool_counters(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(r'^voxmesh_tool_calls_total\{outcome="(\w+)"\} (\S+)$', text, re.M)
    }


async def one_case(address: str, pause_s: float, resume: bool, steps: list[tuple[str, float]]) -> None:
    session = ToolSession(address, config())
    stop_mic = asyncio.Event()

    async def microphone(audio: np.ndarray) -> None:
        # A live microphone: the utterance, then silence until told to stop.
        await session.speak(audio)
        while not stop_mic.is_set():
            await session.speak(silence(0.1, RATE))

    try:
        await session.wait_for("session_started")
        parts = [_speech("What is the weather in Paris?"), silence(pause_s, RATE)]
        if resume:
            parts.append(_speech("And in Rome?"))
        mic = asyncio.create_task(microphone(np.concatenate(parts)))
        call = await session.wait_for("tool_call")
        results_sent: list[int] = []  # event count when each result was sent
        for action, delay_s in steps:
            await asyncio.sleep(delay_s)
            if action == "result":
                results_sent.append(len(session.events))
                session.result(call.call_id, output="sunny")
            elif action == "speech":
                stop_mic.set()
                await mic
                mic = asyncio.create_task(microphone(_speech("Stop, never mind.")))
                stop_mic = asyncio.Event()
            elif action == "interrupt":
                session.send(
                    control=conversation_pb2.Control(action=conversation_pb2.Control.ACTION_INTERRUPT)
                )
            elif action == "typed":
                session.send(text=conversation_pb2.TextInput(text="hello there"))
        # Let everything settle: each call ends (its result spoken, or cancelled), the turns finish.
        await asyncio.sleep(TIMEOUT_S + 1.5)
        stop_mic.set()
        await mic
        assert await session.finished() == grpc.StatusCode.OK, session.details
    finally:
        stop_mic.set()
        await session.close()
    check_invariants(session, call.call_id, results_sent)


def check_invariants(session: ToolSession, first_call: str, results_sent: list[int]) -> None:
    events = session.events
    kinds = [e.WhichOneof("event") for e in events]
    summary = [k for k in session.summary() if k != "audio"]
    calls = [e.tool_call for e in events if e.HasField("tool_call")]
    # No call before its turn's endpoint: a tentative reply's call is held until then, and
    # one dropped with its tentative reply never comes at all (one call per turn).
    for i, kind in enumerate(kinds):
        if kind == "tool_call":
            turn_id = events[i].tool_call.turn_id
            assert any(
                k == "speech_ended" and events[j].speech_ended.turn_id == turn_id
                for j, k in enumerate(kinds[:i])
            ), f"ToolCall of turn {turn_id} before its endpoint: {summary}"
    assert len({c.turn_id for c in calls}) == len(calls), f"a turn sent two calls: {summary}"
    cancels = {
        e.tool_call_cancelled.call_id: i for i, e in enumerate(events) if e.HasField("tool_call_cancelled")
    }
    assert len(cancels) == len([e for e in events if e.HasField("tool_call_cancelled")]), summary
    assert set(cancels) <= {c.call_id for c in calls}, summary
    refusals = [e.error for e in events if e.HasField("error") and e.error.code == "INVALID_ARGUMENT"]
    for e in refusals:
        assert e.message.startswith("tool_result.call_id:"), e.message
    # Every result the client sent is either taken (the call was still open) or refused, once.
    first_cancel = cancels.get(first_call)
    late = [n for n in results_sent if first_cancel is not None and n > first_cancel]
    assert len(refusals) >= len(late), f"a result after the cancel was not refused: {summary}"
    taken = len(results_sent) - len(refusals)
    assert taken <= 1, summary
    # Ended exactly once: a call both answered and cancelled would be two ends.
    assert not (taken and first_call in cancels and results_sent[0] > cancels[first_call]), summary
    replies = " ".join(e.turn_complete.reply_text for e in events if e.HasField("turn_complete"))
    if taken:
        assert first_call not in cancels or cancels[first_call] > results_sent[0], summary
    if "tool says: sunny" in replies:
        assert taken == 1, f"the reply spoke a result that was refused: {summary}"


STEP = st.tuples(
    st.sampled_from(["result", "speech", "interrupt", "typed", "nothing"]),
    st.sampled_from([0.0, 0.05, 0.3, 1.0, TIMEOUT_S + 0.5]),
)
CASE = st.tuples(
    st.sampled_from([0.05, 0.15, 0.25, 0.4]),  # the pause after the question, s
    st.booleans(),  # speak on after it
    st.lists(STEP, min_size=1, max_size=2),  # what the client does after the ToolCall
)


async def concurrent_cases(address: str, cases: list[tuple[float, bool, list[tuple[str, float]]]]) -> None:
    await asyncio.gather(*(one_case(address, pause_s, resume, steps) for pause_s, resume, steps in cases))


@pytest.mark.timeout(1200)  # 200 real-time cases, 8 sessions at a time: ~4 min here, more on a busy runner
@settings(
    max_examples=-(-MESH_CASES // CONCURRENT),
    deadline=None,
    derandomize=True,  # the same cases on every run: a CI failure reruns as it was
    phases=(Phase.explicit, Phase.generate),  # no shrinking: each case costs seconds of real time
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(cases=st.lists(CASE, min_size=CONCURRENT, max_size=CONCURRENT))
def test_tool_call_races_on_the_cpu_mesh(
    race_mesh: tuple[Mesh, int], cases: list[tuple[float, bool, list[tuple[str, float]]]]
) -> None:
    mesh, port = race_mesh
    asyncio.run(concurrent_cases(mesh.address, cases))
    # The sessions ended: every call sent is accounted for, none outstanding.
    counts = tool_counters(port)
    ended = sum(counts.get(k, 0.0) for k in ("answered", "cancelled", "timed_out"))
    assert counts.get("called", 0.0) == ended, counts
    # A held call was either released (called) or discarded with its tentative reply.
    assert counts.get("held", 0.0) <= counts.get("called", 0.0) + counts.get("discarded", 0.0), counts
