"""LiveKit Agents and Pipecat, at their defaults, driving voxmesh through the Realtime edge.

Each framework's own OpenAI Realtime client (LiveKit ``RealtimeModel`` in an
``AgentSession``; Pipecat ``OpenAIRealtimeLLMService`` in a pipeline) runs in
the test-only venv ``.venv-frameworks`` (mk/frameworks.mk) against the CPU
mesh and the edge started here from voxmesh's own venv; only ``base_url``
points it at the edge. Each does a greeting (a reply asked for with
instructions and no user input), a typed turn, a spoken turn, an
interruption and appended context, and must see no ``error``. The echo
loop-back answers: "You said: ..." for a turn, "I was told: <instructions>"
for a reply with no user input, which is how the instructions are checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.integration.realtime_edge import EdgeMesh, edge_mesh
from voxmesh.audio import float_to_pcm16
from voxmesh.synthetic_speech import silence, speak

FRAMEWORKS_PYTHON = Path(os.environ.get("VOXMESH_FRAMEWORKS_VENV", ".venv-frameworks")) / "bin" / "python"
DRIVERS = Path(__file__).parent.parent / "frameworks"
RATE_HZ = 24_000
LONG_INSTRUCTIONS = (
    "Tell the user a long story about a lighthouse keeper who counts the ships that pass "
    "each night, names every one of them after a friend, and writes their names in a book."
)

pytestmark = pytest.mark.skipif(
    not FRAMEWORKS_PYTHON.exists() and os.environ.get("VOXMESH_REQUIRE_FRAMEWORKS") != "1",
    reason="needs .venv-frameworks (make frameworks-venv; make test builds it)",
)


@pytest.fixture(scope="module")
def edge() -> Iterator[EdgeMesh]:
    with edge_mesh() as mesh:
        yield mesh


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The user's side: espeak-ng speech as PCM16 at 24 kHz, and the long reply's instructions."""
    folder = tmp_path_factory.mktemp("speech")
    for name, text in (("hello_world", "hello world"), ("barge_in", "stop please, wait a moment")):
        audio = np.concatenate([speak(text, RATE_HZ), silence(1.5, RATE_HZ)])
        (folder / f"{name}.pcm").write_bytes(float_to_pcm16(audio))
    (folder / "long_instructions.txt").write_text(LONG_INSTRUCTIONS)
    return folder


def run_driver(driver: str, edge: EdgeMesh, speech: Path) -> dict[str, Any]:
    done = subprocess.run(
        [str(FRAMEWORKS_PYTHON), str(DRIVERS / driver), f"http://{edge.edge.address}/v1", str(speech)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    sys.stderr.write(done.stderr[-20_000:])
    assert done.returncode == 0, done.stderr[-5_000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_livekit_agent_session_with_the_default_realtime_model(edge: EdgeMesh, speech: Path) -> None:
    seen = run_driver("livekit_agent.py", edge, speech)
    assert seen["errors"] == [], seen["errors"]
    # Its semantic_vad was served (this vad has no end-of-turn model: silence, said once).
    assert [w["code"] for w in seen["warnings"]] == ["semantic_vad_unavailable"]
    # generate_reply(instructions=...) resolved: response.created carried its metadata
    # back. LiveKit joins the agent's instructions and the call's; both reached voxtral.
    greeting = seen["greeting"]
    assert greeting["replies"] == [greeting["text"]] and not greeting["interrupted"]
    assert "You are Vox" in greeting["text"] and "Greet the user and offer your help" in greeting["text"]
    assert seen["typed"]["replies"] == ["You said: hello there."] == [seen["typed"]["text"]]
    spoken = seen["spoken"]
    assert spoken["heard"].strip() and spoken["replies"] == [spoken["text"]] == [
        f"You said: {spoken['heard']}."
    ]
    # The user spoke over the long reply: LiveKit cut it, truncated the item where its
    # playback stopped (accepted), and the user's words were answered next.
    interruption = seen["interruption"]
    assert interruption["interrupted"]
    assert "lighthouse keeper" in interruption["replies"][0]
    assert interruption["replies"][1].startswith("You said")
    assert [t["audio_end_ms"] > 0 for t in seen["truncated"]] == [True]
    # The system message added to the agent's chat context is in force on the next reply.
    assert seen["context"]["replies"] == [
        "I was told: You are Vox, a helpful assistant.\n\nThe user's name is Ada."
    ]
    # The per-response instructions of the greeting and the long reply rode on their turns only.
    assert "Greet" not in seen["context"]["replies"][0] and "lighthouse" not in seen["context"]["replies"][0]


def test_pipecat_pipeline_with_the_default_realtime_service(edge: EdgeMesh, speech: Path) -> None:
    seen = run_driver("pipecat_pipeline.py", edge, speech)
    assert "failed" not in seen, seen
    # Pipecat ends its connection on any error event: none came, and it is still connected.
    assert seen["errors"] == [] and seen["still_connected"]
    # The first context: its system message became the instructions, its user message a typed turn.
    assert seen["typed"]["replies"] == ["You said: hello there."]
    # An appended system message with run_llm: context, then a reply with no user input on it.
    assert seen["greeting"]["replies"] == [
        "I was told: You are Vox, a helpful assistant.\n\nGreet the user and offer your help."
    ]
    heard = seen["spoken"]["heard"][-1]
    assert heard.strip() and seen["spoken"]["replies"] == [f"You said: {heard}."]
    # The user spoke over the long reply: playback stopped, Pipecat truncated the item where
    # it stopped (accepted), and the words were answered next; the appended context stays.
    interruption = seen["interruption"]
    assert interruption["playback_stopped"]
    assert (
        "lighthouse keeper" in interruption["replies"][0] and "Greet the user" in interruption["replies"][0]
    )
    assert interruption["replies"][1].startswith("You said")
    assert [t["audio_end_ms"] > 0 for t in interruption["truncated"]] == [True]
