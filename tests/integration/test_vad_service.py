"""The vad service as a real process: real speech in, events on the audio clock out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest

from tests.piper_speech import piper_speak
from voxmesh.audio import float_to_pcm16
from voxmesh.processes import ServiceDied, ServiceProcess
from voxmesh.synthetic_speech import silence, speak
from voxmesh.v1 import vad_pb2, vad_pb2_grpc

RATE = 16_000
LEAD_S, TAIL_S = 0.6, 1.2


async def detect(
    address: str, pcm: bytes, chunk_bytes: int = 640, **config: int
) -> list[vad_pb2.DetectResponse]:
    config.setdefault("sample_rate_hz", RATE)
    requests = [vad_pb2.DetectRequest(config=vad_pb2.DetectConfig(session_id="t", **config))]  # type: ignore[arg-type]
    requests += [
        vad_pb2.DetectRequest(audio=pcm[i : i + chunk_bytes]) for i in range(0, len(pcm), chunk_bytes)
    ]
    async with grpc.aio.insecure_channel(address) as channel:
        call = vad_pb2_grpc.VoiceActivityStub(channel).Detect(iter(requests), timeout=30)
        return [event async for event in call]


def utterance(rate: int = RATE) -> tuple[bytes, int, int]:
    """Silence, a sentence, silence: the PCM and where the speech really starts and ends."""
    voice = speak("please tell me about the weather today", rate_hz=rate)
    loud = np.flatnonzero(np.abs(voice) > 0.02)
    lead = int(LEAD_S * rate)
    audio = np.concatenate([silence(LEAD_S, rate), voice, silence(TAIL_S, rate)])
    return float_to_pcm16(audio), lead + int(loud[0]), lead + int(loud[-1])


@pytest.fixture(params=["webrtcvad", "silero"])
def vad(request: pytest.FixtureRequest, start_service: Callable[..., ServiceProcess]) -> ServiceProcess:
    return start_service("vad", "--engine", request.param)


async def test_one_utterance_gives_one_start_and_one_end(vad: ServiceProcess) -> None:
    pcm, speech_start, speech_end = utterance()
    events = await detect(vad.address, pcm)
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds == ["engine", "speech_started", "speech_ended"], kinds
    start, end = events[1].speech_started, events[2].speech_ended
    # The onset is within 100 ms of the first loud sample; pre-roll is the default 300 ms.
    assert abs(start.onset_sample - speech_start) < 0.1 * RATE, (start.onset_sample, speech_start)
    assert start.utterance_start_sample == start.onset_sample - int(0.3 * RATE)
    assert start.onset_sample < start.decided_at_sample <= start.onset_sample + 0.2 * RATE
    assert abs(end.last_voiced_sample - speech_end) < 0.25 * RATE, (end.last_voiced_sample, speech_end)
    # The endpoint is decided the default 500 ms hangover later (to a frame).
    assert 0.5 * RATE <= end.decided_at_sample - end.last_voiced_sample < 0.54 * RATE
    # Silence-only endpointing judges nothing: no probability is claimed.
    assert not end.HasField("turn_complete_probability")


async def test_chunking_does_not_change_the_events(vad: ServiceProcess) -> None:
    pcm, _, _ = utterance()
    small = await detect(vad.address, pcm, chunk_bytes=222)
    large = await detect(vad.address, pcm, chunk_bytes=len(pcm))
    assert small == large


async def test_stream_settings_override_the_defaults(start_service: Callable[..., ServiceProcess]) -> None:
    vad = start_service("vad", "--engine", "webrtcvad")
    pcm, _, _ = utterance()
    events = await detect(vad.address, pcm, pre_roll_ms=100, hangover_ms=800)
    start, end = events[1].speech_started, events[2].speech_ended
    assert start.onset_sample - start.utterance_start_sample == int(0.1 * RATE)
    assert 0.8 * RATE <= end.decided_at_sample - end.last_voiced_sample < 0.84 * RATE


async def test_speech_is_confirmed_once_it_has_lasted(start_service: Callable[..., ServiceProcess]) -> None:
    vad = start_service("vad")
    pcm, _, _ = utterance()
    events = await detect(vad.address, pcm, confirm_speech_ms=300)
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds == ["engine", "speech_started", "speech_confirmed", "speech_ended"], kinds
    confirmed = events[2].speech_confirmed
    assert 0.3 * RATE <= confirmed.voiced_samples < 0.33 * RATE
    assert events[1].speech_started.decided_at_sample < confirmed.decided_at_sample


async def test_a_pause_inside_the_utterance_is_reported_and_so_is_its_end(
    start_service: Callable[..., ServiceProcess],
) -> None:
    vad = start_service("vad")
    voice = speak("what time is it", rate_hz=RATE)
    more = speak("in paris today", rate_hz=RATE)
    audio = np.concatenate([silence(LEAD_S), voice, silence(0.4), more, silence(TAIL_S)])
    events = await detect(vad.address, float_to_pcm16(audio), pause_ms=200)
    kinds = [e.WhichOneof("event") for e in events]
    # The 400 ms gap: paused, then resumed (one utterance); the final silence: paused, then ended.
    assert kinds == [
        "engine",
        "speech_started",
        "speech_paused",
        "speech_resumed",
        "speech_paused",
        "speech_ended",
    ], kinds
    first_pause, resumed, last_pause, end = (events[i] for i in (2, 3, 4, 5))
    assert (
        first_pause.speech_paused.decided_at_sample - first_pause.speech_paused.last_voiced_sample
        >= 0.2 * RATE
    )
    assert resumed.speech_resumed.onset_sample > first_pause.speech_paused.decided_at_sample
    assert last_pause.speech_paused.last_voiced_sample == end.speech_ended.last_voiced_sample
    assert last_pause.speech_paused.decided_at_sample < end.speech_ended.decided_at_sample


async def test_48k_input_is_accepted_by_webrtcvad(start_service: Callable[..., ServiceProcess]) -> None:
    vad = start_service("vad")
    pcm, speech_start, _ = utterance(48_000)
    events = await detect(vad.address, pcm, chunk_bytes=1920, sample_rate_hz=48_000)
    assert [e.WhichOneof("event") for e in events] == ["engine", "speech_started", "speech_ended"]
    assert abs(events[1].speech_started.onset_sample - speech_start) < 0.1 * 48_000


async def test_silence_gives_no_events(start_service: Callable[..., ServiceProcess]) -> None:
    vad = start_service("vad")
    events = await detect(vad.address, float_to_pcm16(silence(3.0)))
    assert [e.WhichOneof("event") for e in events] == ["engine"]


async def test_a_room_without_a_voice_gives_no_events(vad: ServiceProcess) -> None:
    # A microphone's room from the stream's first sample, a quiet fan's hiss (webrtcvad's
    # fresh detector called its first 90-120 ms speech: a false turn at every session's start).
    hiss = np.random.default_rng(7).standard_normal(3 * RATE) * 10 ** (-50 / 20)
    events = await detect(vad.address, float_to_pcm16(hiss))
    assert [e.WhichOneof("event") for e in events] == ["engine"]


@pytest.mark.parametrize(
    ("engine", "requests", "field"),
    [
        ("webrtcvad", [vad_pb2.DetectRequest(audio=b"\0\0")], "config"),
        ("webrtcvad", [vad_pb2.DetectRequest(config=vad_pb2.DetectConfig(sample_rate_hz=44_100))], "config.sample_rate_hz"),
        ("silero", [vad_pb2.DetectRequest(config=vad_pb2.DetectConfig(sample_rate_hz=48_000))], "config.sample_rate_hz"),
        ("webrtcvad", [vad_pb2.DetectRequest(config=vad_pb2.DetectConfig(sample_rate_hz=RATE, hangover_ms=20))], "config.hangover_ms"),
        ("webrtcvad", [vad_pb2.DetectRequest(config=vad_pb2.DetectConfig(sample_rate_hz=RATE, confirm_speech_ms=6000))], "config.confirm_speech_ms"),
        ("webrtcvad", [vad_pb2.DetectRequest(config=vad_pb2.DetectConfig(sample_rate_hz=RATE, pause_ms=6000))], "config.pause_ms"),
        ("webrtcvad", [vad_pb2.DetectRequest(config=vad_pb2.DetectConfig(sample_rate_hz=RATE)), vad_pb2.DetectRequest(audio=b"\0\0\0")], "audio"),
        ("webrtcvad", [vad_pb2.DetectRequest(config=vad_pb2.DetectConfig(sample_rate_hz=RATE)), vad_pb2.DetectRequest()], "request"),
        ("webrtcvad", [vad_pb2.DetectRequest(config=vad_pb2.DetectConfig(sample_rate_hz=RATE))] * 2, "config"),
    ],
)  # fmt: skip
async def test_bad_input_is_invalid_argument_naming_the_field(
    start_service: Callable[..., ServiceProcess],
    engine: str,
    requests: list[vad_pb2.DetectRequest],
    field: str,
) -> None:
    vad = start_service("vad", "--engine", engine)
    async with grpc.aio.insecure_channel(vad.address) as channel:
        call = vad_pb2_grpc.VoiceActivityStub(channel).Detect(iter(requests), timeout=30)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            _ = [e async for e in call]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith(field + ":"), caught.value.details()
    # The service goes on serving.
    pcm, _, _ = utterance()
    assert len(await detect(vad.address, pcm)) == 3


async def test_smart_turn_ends_a_complete_question_sooner_than_the_fixed_hangover(
    start_service: Callable[..., ServiceProcess],
) -> None:
    vad = start_service(
        "vad", "--end-of-turn", "smart-turn", "--smart-turn-model", ".tools/models/smart-turn-v3.2-cpu.onnx"
    )
    question = piper_speak("What time is it?")
    trailing = piper_speak("So I was thinking that we could maybe")
    pcm = float_to_pcm16(np.concatenate([silence(LEAD_S), question, silence(1.5), trailing, silence(1.5)]))
    events = await detect(vad.address, pcm)
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds == ["engine"] + ["speech_started", "speech_ended"] * 2, kinds
    complete, unfinished = events[2].speech_ended, events[4].speech_ended
    # The question ends at the 200 ms short hangover (to a frame), not the fixed 500 ms;
    # the sentence that trails off waits for the 1000 ms maximum.
    assert 0.2 * RATE <= complete.decided_at_sample - complete.last_voiced_sample < 0.23 * RATE
    assert 1.0 * RATE <= unfinished.decided_at_sample - unfinished.last_voiced_sample < 1.03 * RATE
    # Each endpoint carries the model's verdict on its pause, for the gateway to weigh with the words.
    assert complete.turn_complete_probability >= 0.5 > unfinished.turn_complete_probability


def test_smart_turn_model_missing_fails_at_start_up(
    start_service: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    with pytest.raises(ServiceDied) as died:
        start_service("vad", "--end-of-turn", "smart-turn", "--smart-turn-model", str(tmp_path))
    assert died.value.returncode != 0
    assert f"no smart-turn-v3.2-cpu.onnx at the local path {tmp_path}" in str(died.value)
