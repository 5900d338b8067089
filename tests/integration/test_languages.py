"""Session languages across the mesh, and Voxtral Realtime failing without failing turns.

Languages: the gateway checks that ``config.language`` is a BCP-47 tag of
sane length; voxtral and orpheus refuse a language their engine lacks when
the gateway opens their streams, before SessionStarted, and the client gets
INVALID_ARGUMENT naming ``config.language`` and the stage. voxtral's
languages follow its models and the turn mode: Voxtral 2507's eight where
it replies, Voxtral Realtime's thirteen in ``transcribe`` mode once the
realtime model is live; the echo engine's pocketsphinx and every orpheus
engine take English only.

Realtime failures: a realtime model whose request path fails is turned off
at start-up by the silent probe, and one whose path fails later falls back
to the end-of-turn transcription for that turn (``tests.broken_realtime``
breaks the path inside the real service process). Random weights give
random text: the tests assert on events, codes and log records.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest

from tests.broken_realtime import BROKEN, broken_realtime_env
from tests.integration.conftest import Mesh
from voxmesh.audio import float_to_pcm16
from voxmesh.processes import ServiceProcess
from voxmesh.services.voxtral.random_checkpoint import save_voxtral, save_voxtral_realtime
from voxmesh.synthetic_speech import speak
from voxmesh.v1 import common_pb2, conversation_pb2, conversation_pb2_grpc, voxtral_pb2, voxtral_pb2_grpc

INVALID = grpc.StatusCode.INVALID_ARGUMENT
SENTENCE = "hello, please tell me about the weather today"
#: The transformers realtime transcriber's per-utterance work (the start-up probe is its first call).
TRANSFORMERS_REALTIME = "voxmesh.services.voxtral.realtime_transcriber:RealtimeTranscriber._run"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("voxtral-languages")
    return save_voxtral(str(root / "tiny")), save_voxtral_realtime(str(root / "tiny-realtime"))


def transformers_args(checkpoints: tuple[str, str]) -> tuple[str, ...]:
    model, realtime = checkpoints
    return (
        "--engine", "transformers", "--model", model, "--realtime-model", realtime,
        "--device", "cpu", "--dtype", "float32", "--max-reply-tokens", "6", "--temperature", "1.0",
    )  # fmt: skip


class Opened:
    """How a stream that sent only its config ended: the events it got, its status and details."""

    def __init__(self, events: list[str], code: grpc.StatusCode, details: str) -> None:
        self.events, self.code, self.details = events, code, details


async def _drain(call: object) -> Opened:
    events = []
    try:
        async for event in call:  # type: ignore[attr-defined]
            events.append(str(event.WhichOneof("event")))
    except grpc.aio.AioRpcError as exc:
        return Opened(events, exc.code(), exc.details() or "")
    return Opened(events, grpc.StatusCode.OK, "")


async def open_session(address: str, language: str) -> Opened:
    """A Converse stream that sends its config and ends its input."""
    request = conversation_pb2.ConverseRequest(
        config=conversation_pb2.SessionConfig(input_sample_rate_hz=16_000, language=language)
    )
    async with grpc.aio.insecure_channel(address) as channel:
        return await _drain(
            conversation_pb2_grpc.ConversationStub(channel).Converse(iter([request]), timeout=30)
        )


def config(language: str = "", mode: int = 0) -> voxtral_pb2.RespondRequest:
    return voxtral_pb2.RespondRequest(
        config=voxtral_pb2.RespondConfig(session_id="lang", language=language, mode=mode)  # type: ignore[arg-type]
    )


async def open_respond(address: str, language: str, mode: int) -> Opened:
    async with grpc.aio.insecure_channel(address) as channel:
        call = voxtral_pb2_grpc.VoxtralStub(channel).Respond(iter([config(language, mode)]), timeout=30)
        return await _drain(call)


def audio_turn(turn_id: int) -> list[voxtral_pb2.RespondRequest]:
    pcm = float_to_pcm16(speak(SENTENCE))
    pieces = [
        voxtral_pb2.RespondRequest(audio=voxtral_pb2.UtteranceAudio(turn_id=turn_id, pcm=pcm[i : i + 3200]))
        for i in range(0, len(pcm), 3200)
    ]
    return [*pieces, voxtral_pb2.RespondRequest(end_of_turn=voxtral_pb2.EndOfTurn(turn_id=turn_id))]


async def respond(
    address: str, requests: list[voxtral_pb2.RespondRequest]
) -> list[voxtral_pb2.RespondResponse]:
    async def stream() -> AsyncIterator[voxtral_pb2.RespondRequest]:
        for request in requests:
            yield request

    async with grpc.aio.insecure_channel(address) as channel:
        call = voxtral_pb2_grpc.VoxtralStub(channel).Respond(stream(), timeout=120)
        return [event async for event in call]


def logged(svc: ServiceProcess, message: str) -> list[dict[str, object]]:
    """The process's JSON log records whose message starts with ``message``."""
    records = [
        json.loads(line) for line in Path(svc.log_path).read_text().splitlines() if line.startswith("{")
    ]
    return [r for r in records if str(r.get("msg", "")).startswith(message)]


def assert_answered_from_a_final_transcript(events: list[voxtral_pb2.RespondResponse], turn_id: int) -> None:
    """The end-of-turn transcriber's answer: one final transcript (no partials), then the reply."""
    turn = [
        e
        for e in events
        if e.WhichOneof("event") != "engine" and getattr(e, str(e.WhichOneof("event"))).turn_id == turn_id
    ]
    kinds = [str(e.WhichOneof("event")) for e in turn]
    assert "failed" not in kinds, turn
    assert kinds[0] == "transcript" and turn[0].transcript.is_final and "transcript" not in kinds[1:]
    assert kinds[-1] == "done" and 0 < turn[-1].done.generated_tokens <= 6


async def test_the_gateway_refuses_a_language_before_the_session_starts(mesh: Mesh) -> None:
    # The echo engine's pocketsphinx and espeak both take English only: French is refused
    # (by whichever stage answers first), and the client learns it as its own field,
    # before any SessionStarted.
    french = await open_session(mesh.address, "fr")
    assert (french.code, french.events) == (INVALID, [])
    assert french.details in (
        "config.language: voxtral (engine echo, stream mode) does not take 'fr'; it takes en",
        "config.language: orpheus (engine espeak) does not take 'fr'; it takes en",
    )
    # 20 000 characters once overflowed the error trailer when echoed back.
    long = await open_session(mesh.address, "x" * 20_000)
    assert (long.code, long.events) == (INVALID, [])
    assert long.details.startswith("config.language:") and len(long.details) < 120
    english = await open_session(mesh.address, "en-GB")
    assert (english.code, english.events[:1]) == (grpc.StatusCode.OK, ["session_started"])


async def test_voxtral_takes_its_models_languages_and_orpheus_english_only(
    start_mesh: Callable[..., Mesh], checkpoints: tuple[str, str]
) -> None:
    mesh = start_mesh(voxtral_args=transformers_args(checkpoints))
    voxtral = mesh.voxtral.address
    # Voxtral Realtime hears Japanese; in a mode that replies, Voxtral 2507 must understand it too.
    assert (await open_respond(voxtral, "ja", common_pb2.TURN_MODE_TRANSCRIBE)).events == ["engine"]
    stream = await open_respond(voxtral, "ja", common_pb2.TURN_MODE_STREAM)
    assert stream.code == INVALID
    assert stream.details == (
        "config.language: voxtral (engine transformers, stream mode) does not take 'ja'; "
        "it takes de, en, es, fr, hi, it, nl, pt"
    )
    assert (await open_respond(voxtral, "de-AT", common_pb2.TURN_MODE_AUDIO)).events == ["engine"]
    swahili = await open_respond(voxtral, "sw", common_pb2.TURN_MODE_TRANSCRIBE)
    assert swahili.code == INVALID and "ja, ko" in swahili.details
    # Through the gateway: voxtral takes German, the English-only orpheus (espeak) does not.
    german = await open_session(mesh.address, "de")
    assert (german.code, german.events) == (INVALID, [])
    assert german.details == "config.language: orpheus (engine espeak) does not take 'de'; it takes en"


async def test_a_realtime_model_that_fails_its_probe_is_off_from_start_up(
    start_service: Callable[..., ServiceProcess], checkpoints: tuple[str, str], tmp_path: Path
) -> None:
    env = broken_realtime_env(tmp_path / "site", TRANSFORMERS_REALTIME, after=0)
    svc = start_service(
        "voxtral", *transformers_args(checkpoints), env={**env, "HF_HUB_OFFLINE": "1"}, timeout_s=180
    )
    # One line says so at start-up (no traceback), and the process serves.
    (off,) = logged(svc, "live transcripts off")
    assert (
        off["level"] == "warning" and "RealtimeProbeFailed" in str(off["msg"]) and BROKEN in str(off["msg"])
    )
    assert not logged(svc, "live transcripts on")
    assert "Traceback" not in svc.log_tail(10_000)
    # Stream turns are answered from the reply model's end-of-turn transcription.
    events = await respond(svc.address, [config(), *audio_turn(1), *audio_turn(2)])
    assert_answered_from_a_final_transcript(events, 1)
    assert_answered_from_a_final_transcript(events, 2)
    assert not logged(svc, "live transcript failed"), "no live transcriber was tried per turn"
    # Without live transcripts, transcribe mode takes Voxtral 2507's languages only.
    assert (await open_respond(svc.address, "ja", common_pb2.TURN_MODE_TRANSCRIBE)).code == INVALID


async def test_a_live_transcript_failing_mid_turn_falls_back_for_that_turn(
    start_service: Callable[..., ServiceProcess], checkpoints: tuple[str, str], tmp_path: Path
) -> None:
    env = broken_realtime_env(tmp_path / "site", TRANSFORMERS_REALTIME, after=1)
    svc = start_service(
        "voxtral", *transformers_args(checkpoints), env={**env, "HF_HUB_OFFLINE": "1"}, timeout_s=180
    )
    assert len(logged(svc, "live transcripts on")) == 1  # the probe passed
    events = await respond(svc.address, [config(), *audio_turn(1), *audio_turn(2)])
    # Each turn's live transcript failed; each turn was still answered, not failed.
    assert_answered_from_a_final_transcript(events, 1)
    assert_answered_from_a_final_transcript(events, 2)
    warnings = logged(svc, "live transcript failed")
    assert [w["turn_id"] for w in warnings] == [1, 2]
    assert all(w["level"] == "warning" and BROKEN in str(w["msg"]) for w in warnings)


async def test_the_end_of_turn_transcription_asks_for_the_sessions_language(
    checkpoints: tuple[str, str],
) -> None:
    # In-process (the prompt the model receives is read, see voxtral_conversation): with no
    # realtime model a stream-mode turn is transcribed by Voxtral 2507, whose transcription
    # request takes the language (mistral-common's ``lang:xx`` before ``[TRANSCRIBE]``).
    from tests.integration.voxtral_conversation import converse
    from voxmesh.services.voxtral.settings import VoxtralSettings
    from voxmesh.services.voxtral.transformers_engine import TransformersEngine

    settings = VoxtralSettings(
        engine="transformers",
        model=checkpoints[0],
        realtime_model="",
        device="cpu",
        dtype="float32",
        max_reply_tokens=4,
        temperature=1.0,
    )
    engine = TransformersEngine(settings)
    await engine.start()
    try:
        config = voxtral_pb2.RespondConfig(
            session_id="de", mode=common_pb2.TURN_MODE_STREAM, language="de-AT"
        )
        conversation = await converse(engine, settings, config, [speak("guten Tag, wie wird das Wetter")])
    finally:
        await engine.close()
    (transcription,) = [p for p in conversation.prompts if p.endswith("[TRANSCRIBE]")]
    assert transcription.endswith("lang:de[TRANSCRIBE]")
