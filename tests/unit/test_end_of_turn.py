"""The end-of-turn model (Smart Turn v3.2) and the hangover it sets per pause, on Piper speech.

The model file comes from ``make`` (mk/smart_turn.mk extracts it from the
pipecat-ai wheel); frames are classified by the real webrtcvad engine.
"""

from __future__ import annotations

import asyncio
import itertools
import os

import numpy as np
import pytest

from tests.piper_speech import piper_speak
from voxmesh.audio import float_to_pcm16
from voxmesh.services.vad.end_of_turn import EndOfTurnPolicy, Endpointer
from voxmesh.services.vad.segmenter import Segmenter, SpeechEnded, SpeechStarted
from voxmesh.services.vad.smart_turn import SmartTurnModel
from voxmesh.services.vad.webrtcvad_engine import WebRtcVadEngine
from voxmesh.synthetic_speech import silence
from voxmesh.v1 import common_pb2

RATE = 16_000
MODEL = ".tools/models/smart-turn-v3.2-cpu.onnx"
COMPLETE = ("What time is it?", "Please tell me about the weather today.", "My favourite colour is blue.")
TRAILING_OFF = ("So I was thinking that we could maybe", "I was wondering if you could,", "and then we could")


@pytest.fixture(scope="module")
def model() -> SmartTurnModel:
    if not os.path.isfile(MODEL):
        pytest.fail(f"{MODEL} is missing: run `make smart-turn-model`")
    return SmartTurnModel.load(MODEL)


def _voiced(text: str, cut: float = 1.0) -> np.ndarray:
    """Piper speech without its trailing silence, optionally cut at a share of its length."""
    audio = piper_speak(text)
    loud = np.flatnonzero(np.abs(audio) > 0.02)
    audio = audio[: loud[-1] + 1]
    return audio[: int(len(audio) * cut)]


def _with_pause(audio: np.ndarray, pause_s: float = 0.2) -> np.ndarray:
    return np.concatenate([silence(0.3), audio, silence(pause_s)])


@pytest.mark.parametrize("text", COMPLETE)
def test_complete_sentences_sound_finished(model: SmartTurnModel, text: str) -> None:
    assert model.probability(_with_pause(_voiced(text)), RATE) > 0.7


@pytest.mark.parametrize("text", TRAILING_OFF)
def test_sentences_that_trail_off_do_not(model: SmartTurnModel, text: str) -> None:
    assert model.probability(_with_pause(_voiced(text)), RATE) < 0.3


def test_a_sentence_cut_in_the_middle_does_not(model: SmartTurnModel) -> None:
    whole = _voiced("I'd like to book a table for two people at eight")
    assert model.probability(_with_pause(whole[: int(0.55 * len(whole))]), RATE) < 0.5


def test_8k_audio_is_resampled_to_the_models_rate(model: SmartTurnModel) -> None:
    audio = _with_pause(_voiced(COMPLETE[0]))
    at_8k = piper_speak(COMPLETE[0], rate_hz=8_000)
    assert abs(model.probability(at_8k, 8_000) - model.probability(audio, RATE)) < 0.2


async def _events(
    audio: np.ndarray, model: SmartTurnModel | None, hangover_ms: int = 500
) -> tuple[list[SpeechStarted | SpeechEnded], Endpointer]:
    classifier = WebRtcVadEngine().classifier(RATE, common_pb2.VAD_SENSITIVITY_MEDIUM)
    segmenter = Segmenter(pre_roll=300 * 16, hangover=hangover_ms * 16, min_speech=90 * 16)
    policy = EndOfTurnPolicy(complete_hangover=200 * 16, incomplete_hangover=1000 * 16) if model else None
    endpointer = Endpointer(segmenter, RATE, classifier.frame_samples, model, policy)
    pcm = float_to_pcm16(audio)
    frame_bytes = 2 * classifier.frame_samples
    events = []
    for offset in range(0, len(pcm) - frame_bytes + 1, frame_bytes):
        frame = pcm[offset : offset + frame_bytes]
        event = await endpointer.feed(frame, classifier.is_speech(frame))
        if event is not None:
            events.append(event)
    return events, endpointer


def _pause_ms(end: SpeechStarted | SpeechEnded) -> float:
    assert isinstance(end, SpeechEnded)
    return (end.decided_at_sample - end.last_voiced_sample) / 16


async def test_a_complete_question_ends_at_the_short_hangover(model: SmartTurnModel) -> None:
    audio = np.concatenate([silence(0.5), _voiced(COMPLETE[0]), silence(1.5)])
    events, endpointer = await _events(audio, model)
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    assert 200 <= _pause_ms(events[1]) < 230
    assert endpointer.last_verdict is not None and endpointer.last_verdict.complete


async def test_a_sentence_that_trails_off_waits_for_the_hard_maximum(model: SmartTurnModel) -> None:
    audio = np.concatenate([silence(0.5), _voiced(TRAILING_OFF[0]), silence(1.5)])
    events, endpointer = await _events(audio, model)
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    assert 1000 <= _pause_ms(events[1]) < 1030
    assert endpointer.last_verdict is not None and not endpointer.last_verdict.complete


async def test_a_mid_sentence_pause_longer_than_the_fixed_hangover_stays_one_turn(
    model: SmartTurnModel,
) -> None:
    audio = np.concatenate(
        [silence(0.5), _voiced(TRAILING_OFF[1]), silence(0.7), _voiced("book a table for two."), silence(1.5)]
    )
    events, _ = await _events(audio, model)
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    # Silence-only endpointing with its 500 ms hangover splits the same audio in two.
    split, _ = await _events(audio, None)
    assert [type(e) for e in split] == [SpeechStarted, SpeechEnded] * 2


async def test_silence_only_endpointing_keeps_the_fixed_hangover() -> None:
    audio = np.concatenate([silence(0.5), _voiced(COMPLETE[0]), silence(1.5)])
    events, endpointer = await _events(audio, None)
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    assert 500 <= _pause_ms(events[1]) < 530
    assert endpointer.last_verdict is None


def test_the_policy_refuses_pauses_out_of_order() -> None:
    with pytest.raises(ValueError, match="complete_hangover"):
        EndOfTurnPolicy(complete_hangover=16_000, incomplete_hangover=8_000)


class _FixedModel:
    """A stand-in model that always gives ``p``: the hangover per band is what is tested."""

    def __init__(self, p: float) -> None:
        self.p = p

    async def judge(self, audio: np.ndarray, sample_rate_hz: int) -> tuple[float, float]:
        return self.p, 0.0


@pytest.mark.parametrize(("p", "pause_ms"), [(0.95, 150), (0.3, 400), (0.05, 1000)])
def test_a_doubtful_pause_ends_between_the_judged_pause_and_the_maximum(p: float, pause_ms: int) -> None:
    engine = WebRtcVadEngine()
    classifier = engine.classifier(RATE, common_pb2.VAD_SENSITIVITY_MEDIUM)
    per_ms = RATE // 1000
    endpointer = Endpointer(
        Segmenter(300 * per_ms, 500 * per_ms, 90 * per_ms),
        RATE,
        classifier.frame_samples,
        _FixedModel(p),
        EndOfTurnPolicy(150 * per_ms, 1000 * per_ms, 0.9),
        doubtful_hangover=400 * per_ms,
        doubtful_threshold=0.1,
    )
    pcm = float_to_pcm16(np.concatenate([silence(0.3), _voiced("What time is it?"), silence(1.5)]))
    size = 2 * classifier.frame_samples
    ended = []
    for offset in range(0, len(pcm) - size + 1, size):
        frame = pcm[offset : offset + size]
        event = asyncio.run(endpointer.feed(frame, classifier.is_speech(frame)))
        if isinstance(event, SpeechEnded):
            ended.append(event)
    assert len(ended) == 1
    pause = (ended[0].decided_at_sample - ended[0].last_voiced_sample) / per_ms
    # Decided on the first 30 ms frame boundary at or past the band's pause.
    assert pause_ms <= pause < pause_ms + 30


def test_model_calls_run_one_at_a_time_on_a_thread_below_normal_priority(
    model: SmartTurnModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four sessions pausing together queue their calls instead of taking both cores from the transcriber."""
    import threading
    import time

    from voxmesh.services.vad.smart_turn import MODEL_THREAD_NICENESS

    spans: list[tuple[float, float]] = []
    niceness: list[int] = []
    original = model.timed_probability

    def recording(audio: np.ndarray, rate: int) -> tuple[float, float]:
        began = time.perf_counter()
        niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        result = original(audio, rate)
        spans.append((began, time.perf_counter()))
        return result

    monkeypatch.setattr(model, "timed_probability", recording)
    audio = np.concatenate([_voiced("What time is it?"), silence(0.2)])

    async def four_pauses() -> list[tuple[float, float]]:
        return await asyncio.gather(*(model.judge(audio, RATE) for _ in range(4)))

    results = asyncio.run(four_pauses())
    assert len(results) == 4 and len({round(p, 6) for p, _ in results}) == 1
    spans.sort()
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans))
    assert niceness == [os.getpriority(os.PRIO_PROCESS, 0) + MODEL_THREAD_NICENESS] * 4
