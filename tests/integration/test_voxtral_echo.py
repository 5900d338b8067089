"""The voxtral service as a real process with the echo engine (pocketsphinx), over gRPC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import grpc
import pytest

from voxmesh.audio import float_to_pcm16
from voxmesh.processes import ServiceProcess
from voxmesh.synthetic_speech import speak
from voxmesh.v1 import common_pb2, voxtral_pb2, voxtral_pb2_grpc

SENTENCE = "hello, please tell me about the weather today"
Request = voxtral_pb2.RespondRequest


@pytest.fixture
def voxtral(start_service: Callable[..., ServiceProcess]) -> ServiceProcess:
    return start_service("voxtral", "--engine", "echo")


def config(**fields: object) -> Request:
    return Request(config=voxtral_pb2.RespondConfig(session_id="t", **fields))  # type: ignore[arg-type]


def audio_turn(turn_id: int, text: str = SENTENCE, piece_bytes: int = 3200) -> list[Request]:
    pcm = float_to_pcm16(speak(text))
    out = [
        Request(audio=voxtral_pb2.UtteranceAudio(turn_id=turn_id, pcm=pcm[i : i + piece_bytes]))
        for i in range(0, len(pcm), piece_bytes)
    ]
    return [*out, Request(end_of_turn=voxtral_pb2.EndOfTurn(turn_id=turn_id))]


def text_turn(turn_id: int, text: str) -> Request:
    return Request(text=voxtral_pb2.TextTurn(turn_id=turn_id, text=text))


async def respond(address: str, requests: list[Request]) -> list[voxtral_pb2.RespondResponse]:
    async with grpc.aio.insecure_channel(address) as channel:
        call = voxtral_pb2_grpc.VoxtralStub(channel).Respond(iter(requests), timeout=60)
        return [event async for event in call]


def of_turn(events: list[voxtral_pb2.RespondResponse], turn_id: int) -> list[voxtral_pb2.RespondResponse]:
    return [
        e
        for e in events
        if e.WhichOneof("event") != "engine" and getattr(e, e.WhichOneof("event")).turn_id == turn_id
    ]


async def test_stream_mode_sends_partials_then_final_then_the_reply(voxtral: ServiceProcess) -> None:
    events = await respond(voxtral.address, [config(), *audio_turn(1)])
    assert events[0].engine.engine == "echo" and events[0].engine.is_fallback
    turn = of_turn(events, 1)
    transcripts = [e.transcript for e in turn if e.WhichOneof("event") == "transcript"]
    assert len(transcripts) >= 2 and not any(t.is_final for t in transcripts[:-1])
    final = transcripts[-1]
    assert final.is_final and final.text
    # The final one carries pocketsphinx's posterior for its last word; partials carry none.
    assert final.HasField("last_word_confidence") and 0.0 < final.last_word_confidence <= 1.0
    assert not any(t.HasField("last_word_confidence") for t in transcripts[:-1])
    # Every event after the final transcript is reply text, then done.
    after = turn[turn.index(next(e for e in turn if e.transcript.is_final)) + 1 :]
    assert [e.WhichOneof("event") for e in after[:-1]] == ["reply"] * (len(after) - 1)
    assert "".join(e.reply.delta for e in after[:-1]) == f"You said: {final.text}."
    done = after[-1].done
    assert done.finish_reason == "stop" and done.generated_tokens == len(after) - 1


async def test_transcribe_mode_gives_no_reply(voxtral: ServiceProcess) -> None:
    events = of_turn(
        await respond(voxtral.address, [config(mode=common_pb2.TURN_MODE_TRANSCRIBE), *audio_turn(1)]), 1
    )
    assert events[-1].done.finish_reason == "transcribe_only"
    assert events[-2].transcript.is_final and events[-2].transcript.text
    assert not [e for e in events if e.WhichOneof("event") == "reply"]


async def test_audio_mode_replies_from_the_whole_utterance(voxtral: ServiceProcess) -> None:
    events = of_turn(
        await respond(voxtral.address, [config(mode=common_pb2.TURN_MODE_AUDIO), *audio_turn(1)]), 1
    )
    reply = "".join(e.reply.delta for e in events if e.WhichOneof("event") == "reply")
    assert reply.startswith("You said: ") and len(reply) > len("You said: .")
    assert events[-1].done.finish_reason == "stop"
    # The turn's transcript, made beside the reply, is what the history keeps: final, before done.
    assert events[-2].WhichOneof("event") == "transcript" and events[-2].transcript.is_final
    assert events[-2].transcript.text


async def test_a_stream_mode_utterance_with_no_words_gets_no_reply_and_the_session_goes_on(
    voxtral: ServiceProcess,
) -> None:
    # Silence reaches pocketsphinx as an utterance with no words: no reply to nothing.
    silence = Request(audio=voxtral_pb2.UtteranceAudio(turn_id=1, pcm=b"\0\0" * 16_000))
    end = Request(end_of_turn=voxtral_pb2.EndOfTurn(turn_id=1))
    events = await respond(voxtral.address, [config(), silence, end, text_turn(2, "still here")])
    first = of_turn(events, 1)
    assert [e.WhichOneof("event") for e in first] == ["transcript", "failed"]
    assert first[0].transcript.is_final and first[0].transcript.text == ""
    assert first[1].failed.code == "NO_SPEECH" and first[1].failed.retryable
    assert of_turn(events, 2)[-1].done.finish_reason == "stop"


async def test_an_audio_mode_turn_without_audio_fails_with_invalid_argument(voxtral: ServiceProcess) -> None:
    # Found by the hostile-input property: empty audio, then end of turn, reached pocketsphinx as
    # an empty buffer and failed the turn with INTERNAL.
    requests = [
        config(mode=common_pb2.TURN_MODE_AUDIO),
        Request(audio=voxtral_pb2.UtteranceAudio(turn_id=1)),
        Request(end_of_turn=voxtral_pb2.EndOfTurn(turn_id=1)),
        text_turn(2, "still here"),
    ]
    events = await respond(voxtral.address, requests)
    failed = [e.failed for e in of_turn(events, 1) if e.WhichOneof("event") == "failed"]
    assert len(failed) == 1 and failed[0].code == "INVALID_ARGUMENT"
    assert failed[0].message.startswith("end_of_turn.turn_id:") and "no audio" in failed[0].message
    assert of_turn(events, 2)[-1].done.finish_reason == "stop"


async def test_typed_turns_and_a_cancelled_turn_on_one_stream(voxtral: ServiceProcess) -> None:
    requests = [
        config(),
        text_turn(1, "good morning"),
        # Turn 2 is cancelled while the user is still speaking: it is never answered.
        *audio_turn(2)[:5],
        Request(cancel=common_pb2.CancelTurn(turn_id=2)),
        *audio_turn(2)[5:8],  # late audio crossing the cancel is ignored
        text_turn(3, "what next"),
    ]
    events = await respond(voxtral.address, requests)
    first = of_turn(events, 1)
    assert first[0].transcript.text == "good morning" and first[0].transcript.is_final
    assert (
        "".join(e.reply.delta for e in first if e.WhichOneof("event") == "reply") == "You said: good morning."
    )
    assert of_turn(events, 2) == [] or all(e.WhichOneof("event") == "transcript" for e in of_turn(events, 2))
    third = of_turn(events, 3)
    assert third[-1].WhichOneof("event") == "done"


async def test_an_utterance_past_the_limit_fails_its_turn_only(
    start_service: Callable[..., ServiceProcess],
) -> None:
    voxtral = start_service("voxtral", "--engine", "echo", "--max-utterance-s", "1")
    events = await respond(voxtral.address, [config(), *audio_turn(1), text_turn(2, "still here")])
    failed = [e.failed for e in of_turn(events, 1) if e.WhichOneof("event") == "failed"]
    assert (
        len(failed) == 1 and failed[0].code == "INVALID_ARGUMENT" and "longer than 1 s" in failed[0].message
    )
    assert of_turn(events, 2)[-1].done.finish_reason == "stop"


async def test_client_going_away_mid_turn_leaves_the_service_serving(voxtral: ServiceProcess) -> None:
    async with grpc.aio.insecure_channel(voxtral.address) as channel:

        async def requests() -> AsyncIterator[Request]:
            yield config()
            for r in audio_turn(1)[:10]:
                yield r
            await asyncio.sleep(30)

        call = voxtral_pb2_grpc.VoxtralStub(channel).Respond(requests())
        assert (await call.read()).WhichOneof("event") == "engine"
        call.cancel()
    events = await respond(voxtral.address, [config(), text_turn(1, "are you there")])
    assert events[-1].WhichOneof("event") == "done"


@pytest.mark.parametrize(
    ("requests", "field"),
    [
        ([text_turn(1, "hi")], "config"),
        ([config(sample_rate_hz=8_000)], "config.sample_rate_hz"),
        ([config(language="fr")], "config.language"),
        ([config(mode=9)], "config.mode"),
        ([config(), text_turn(0, "hi")], "text.turn_id"),
        ([config(), text_turn(1, "  ")], "text.text"),
        ([config(), Request(audio=voxtral_pb2.UtteranceAudio(turn_id=1, pcm=b"\0"))], "audio.pcm"),
        ([config(), text_turn(2, "a"), text_turn(1, "b")], "text.turn_id"),
        ([config(), Request()], "request"),
        ([config(), config()], "config"),
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field(
    voxtral: ServiceProcess, requests: list[Request], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await respond(voxtral.address, requests)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith(field + ":"), caught.value.details()
    events = await respond(voxtral.address, [config(), text_turn(1, "still serving")])
    assert events[-1].WhichOneof("event") == "done"
