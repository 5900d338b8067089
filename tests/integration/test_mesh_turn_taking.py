"""Turn taking through the whole CPU mesh: the vad's end-of-turn model ends a finished question early."""

from __future__ import annotations

from collections.abc import Callable

from tests.integration.conftest import Mesh
from tests.piper_speech import piper_speak
from voxmesh.client import AudioOut, SpeechEnded, SpeechStarted, TurnComplete
from voxmesh.talk import talk

SMART_TURN = ("--end-of-turn", "smart-turn", "--smart-turn-model", ".tools/models/smart-turn-v3.2-cpu.onnx")
#: The vad's fixed hangover (silence-only endpointing), in ms.
FIXED_HANGOVER_MS = 500


async def test_a_complete_question_gets_its_endpoint_before_the_fixed_hangover(
    start_mesh: Callable[..., Mesh],
) -> None:
    mesh = start_mesh(vad_args=SMART_TURN)
    events: list[object] = []
    result = await talk(piper_speak("What time is it?"), 16_000, mesh.address, on_event=events.append)
    assert not result.errors, result.errors
    assert len(result.turns) == 1
    kinds = [type(e) for e in events if type(e) in (SpeechStarted, SpeechEnded, AudioOut, TurnComplete)]
    first_audio, done = kinds.index(AudioOut), kinds.index(TurnComplete)
    assert kinds[:2] == [SpeechStarted, SpeechEnded] and 2 <= first_audio < done, kinds
    # On the audio clock: the endpoint came 200 ms (the short hangover, to a 30 ms frame)
    # after the last voiced sample, not the fixed 500 ms.
    (ended,) = [e for e in events if isinstance(e, SpeechEnded)]
    pause_ms = ended.endpoint_offset_ms - ended.last_voiced_offset_ms
    assert 200 <= pause_ms < 230 < FIXED_HANGOVER_MS, pause_ms
    # (TurnComplete's vad_decision_ms is wall time: it adds the model's call, so it is not asserted.)


async def test_silence_only_endpointing_waits_the_fixed_hangover_on_the_same_question(
    start_mesh: Callable[..., Mesh],
) -> None:
    mesh = start_mesh()
    events: list[object] = []
    result = await talk(piper_speak("What time is it?"), 16_000, mesh.address, on_event=events.append)
    assert len(result.turns) == 1, result.errors
    (ended,) = [e for e in events if isinstance(e, SpeechEnded)]
    assert (
        FIXED_HANGOVER_MS <= ended.endpoint_offset_ms - ended.last_voiced_offset_ms < FIXED_HANGOVER_MS + 30
    )
