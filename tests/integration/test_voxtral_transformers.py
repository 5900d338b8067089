"""The voxtral service with the ``transformers`` engine on a tiny random Voxtral, over gRPC.

The checkpoint (``random_checkpoint.save_voxtral``, built offline once per
module) has the real architecture and audio geometry and a real tekken
tokenizer with an audio section, so mistral-common prompt building, the
30 s audio windows (375 audio tokens each), mel features, the encoder,
token streaming, limits and cancellation all run for real. Random weights
give random text: the tests assert on structure, counts and errors.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from voxmesh.audio import float_to_pcm16
from voxmesh.processes import ServiceProcess, free_port
from voxmesh.services.voxtral.random_checkpoint import save_voxtral
from voxmesh.synthetic_speech import speak
from voxmesh.v1 import common_pb2, voxtral_pb2, voxtral_pb2_grpc

SENTENCE = "hello, please tell me about the weather today"
#: Reply cap of the main service: a few ms a token on CPU.
REPLY_TOKENS = 8
#: Context of the main service: one 30 s audio window (376 tokens) fits, two do not.
CONTEXT_TOKENS = 600
#: Reply cap of the cancel service: ~20 s of generation, so only a cancel ends a reply soon.
LONG_REPLY_TOKENS = 4000
AUDIO_WINDOW_TOKENS = 375
Request = voxtral_pb2.RespondRequest
Event = voxtral_pb2.RespondResponse


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    return save_voxtral(str(tmp_path_factory.mktemp("voxtral") / "tiny"))


def _serve(checkpoint: str, *args: str) -> Iterator[ServiceProcess]:
    svc = ServiceProcess(
        "voxtral",
        free_port(),
        [
            "--engine",
            "transformers",
            "--model",
            checkpoint,
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--metrics-port",
            "-1",
            "--temperature",
            "1.0",
            *args,
        ],
        {"HF_HUB_OFFLINE": "1"},
    )
    svc.start().wait_serving(180)
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def voxtral(checkpoint: str) -> Iterator[ServiceProcess]:
    yield from _serve(
        checkpoint,
        "--max-reply-tokens", str(REPLY_TOKENS),
        "--max-model-len", str(CONTEXT_TOKENS),
        "--max-utterance-s", "60",
    )  # fmt: skip


@pytest.fixture(scope="module")
def long_replies(checkpoint: str) -> Iterator[ServiceProcess]:
    yield from _serve(checkpoint, "--max-reply-tokens", str(LONG_REPLY_TOKENS))


def config(**fields: object) -> Request:
    return Request(config=voxtral_pb2.RespondConfig(session_id="t", **fields))  # type: ignore[arg-type]


def audio_turn(turn_id: int, audio: np.ndarray, piece_bytes: int = 6400) -> list[Request]:
    pcm = float_to_pcm16(audio)
    out = [
        Request(audio=voxtral_pb2.UtteranceAudio(turn_id=turn_id, pcm=pcm[i : i + piece_bytes]))
        for i in range(0, len(pcm), piece_bytes)
    ]
    return [*out, Request(end_of_turn=voxtral_pb2.EndOfTurn(turn_id=turn_id))]


def text_turn(turn_id: int, text: str) -> Request:
    return Request(text=voxtral_pb2.TextTurn(turn_id=turn_id, text=text))


async def respond(address: str, requests: list[Request]) -> list[Event]:
    async with grpc.aio.insecure_channel(address) as channel:
        call = voxtral_pb2_grpc.VoxtralStub(channel).Respond(iter(requests), timeout=60)
        return [event async for event in call]


def of_turn(events: list[Event], turn_id: int) -> list[Event]:
    return [
        e
        for e in events
        if e.WhichOneof("event") != "engine" and getattr(e, e.WhichOneof("event")).turn_id == turn_id
    ]


def kinds(events: list[Event]) -> list[str]:
    return [str(e.WhichOneof("event")) for e in events]


def log_lines(svc: ServiceProcess, text: str) -> list[str]:
    return [line for line in Path(svc.log_path).read_text().splitlines() if text in line]


def assert_reply(events: list[Event], cap: int = REPLY_TOKENS) -> voxtral_pb2.ReplyDone:
    """Reply deltas then done, with the totals of a capped random reply."""
    assert kinds(events)[-1] == "done"
    assert set(kinds(events[:-1])) <= {"reply"}
    done = events[-1].done
    assert done.finish_reason in ("stop", "length")
    assert 0 < done.generated_tokens <= cap
    assert (done.finish_reason == "length") == (done.generated_tokens == cap)
    assert len(events) - 1 <= done.generated_tokens  # at most one delta per token
    return done


async def test_typed_turns_stream_deltas_and_history_grows(voxtral: ServiceProcess) -> None:
    events = await respond(
        voxtral.address,
        [config(system_prompt="Answer briefly."), text_turn(1, "good morning"), text_turn(2, "and then?")],
    )
    assert events[0].engine.engine == "transformers" and not events[0].engine.is_fallback
    first, second = of_turn(events, 1), of_turn(events, 2)
    # A typed turn's transcript is its text, final; then the reply streams.
    assert first[0].transcript.is_final and first[0].transcript.text == "good morning"
    done1 = assert_reply(first[1:])
    assert len(first[1:-1]) >= 2, "a reply streams as several deltas"
    done2 = assert_reply(second[1:])
    # Turn 2's prompt carries turn 1's exchange.
    assert done2.prompt_tokens > done1.prompt_tokens + 3


async def test_reply_is_capped_at_max_reply_tokens(voxtral: ServiceProcess) -> None:
    # A random model almost never samples </s> in 8 tokens: the cap ends the reply.
    events = of_turn(await respond(voxtral.address, [config(), text_turn(1, "Tell me a long story.")]), 1)
    done = assert_reply(events[1:])
    assert done.finish_reason == "length" and done.generated_tokens == REPLY_TOKENS


async def test_audio_mode_replies_from_the_audio(voxtral: ServiceProcess) -> None:
    events = of_turn(
        await respond(
            voxtral.address,
            [
                config(mode=common_pb2.TURN_MODE_AUDIO, system_prompt="Be kind."),
                *audio_turn(1, speak(SENTENCE)),
            ],
        ),
        1,
    )
    # The turn's transcript (made beside the reply, for the history): one, final (no realtime
    # model: no partials), before done.
    transcripts = [(i, e.transcript) for i, e in enumerate(events) if e.WhichOneof("event") == "transcript"]
    assert len(transcripts) == 1 and transcripts[0][1].is_final and transcripts[0][0] < len(events) - 1
    done = assert_reply([e for e in events if e.WhichOneof("event") != "transcript"])
    # One 30 s window of audio tokens, plus the instructions after it and control tokens.
    assert AUDIO_WINDOW_TOKENS < done.prompt_tokens < AUDIO_WINDOW_TOKENS + 32


async def test_stream_mode_transcribes_then_replies(voxtral: ServiceProcess) -> None:
    events = of_turn(await respond(voxtral.address, [config(), *audio_turn(1, speak(SENTENCE))]), 1)
    # Voxtral Mini 3B transcribes the whole utterance at end of turn: one final transcript, no partials.
    assert kinds(events)[0] == "transcript" and events[0].transcript.is_final
    assert "transcript" not in kinds(events[1:])
    done = assert_reply(events[1:])
    # The reply is generated from the transcript as text: no audio tokens in its prompt.
    assert done.prompt_tokens < AUDIO_WINDOW_TOKENS


async def test_transcribe_mode_gives_a_final_transcript_and_no_reply(voxtral: ServiceProcess) -> None:
    events = of_turn(
        await respond(
            voxtral.address, [config(mode=common_pb2.TURN_MODE_TRANSCRIBE), *audio_turn(1, speak(SENTENCE))]
        ),
        1,
    )
    assert kinds(events) == ["transcript", "done"]
    assert events[0].transcript.is_final
    assert events[1].done.finish_reason == "transcribe_only"
    stops = [json.loads(line) for line in log_lines(voxtral, "generation stopped")]
    assert any(s["kind"] == "transcript" and s["prompt_tokens"] > AUDIO_WINDOW_TOKENS for s in stops)


@pytest.mark.parametrize("mode", [common_pb2.TURN_MODE_AUDIO, common_pb2.TURN_MODE_STREAM])
async def test_an_utterance_past_the_context_fails_its_turn_only(voxtral: ServiceProcess, mode: int) -> None:
    # 31 s: two 30 s windows = 750 audio tokens, past the 600-token context. Refused, never truncated.
    long = np.concatenate([speak(SENTENCE), np.zeros(31 * 16_000, np.float32)])
    events = await respond(
        voxtral.address, [config(mode=mode), *audio_turn(1, long), text_turn(2, "still here")]
    )
    failed = [e.failed for e in of_turn(events, 1) if e.WhichOneof("event") == "failed"]
    assert len(failed) == 1 and failed[0].code == "INVALID_ARGUMENT"
    assert failed[0].message.startswith("audio.pcm:") and "context" in failed[0].message
    assert "reply" not in kinds(of_turn(events, 1))
    assert of_turn(events, 2)[-1].WhichOneof("event") == "done"


async def test_cancel_mid_reply_stops_generation(long_replies: ServiceProcess) -> None:
    queue: asyncio.Queue[Request | None] = asyncio.Queue()

    async def requests() -> AsyncIterator[Request]:
        while (request := await queue.get()) is not None:
            yield request

    async with grpc.aio.insecure_channel(long_replies.address) as channel:
        call = voxtral_pb2_grpc.VoxtralStub(channel).Respond(requests(), timeout=60)
        for request in (config(), text_turn(1, "Talk for a long time.")):
            queue.put_nowait(request)
        while (event := await call.read()).WhichOneof("event") != "reply":
            pass
        queue.put_nowait(Request(cancel=common_pb2.CancelTurn(turn_id=1, spoken_text="")))
        queue.put_nowait(text_turn(2, "Short one?"))
        while True:  # turn 2 starts only once turn 1 has stopped
            event = await call.read()
            if event.WhichOneof("event") == "reply" and event.reply.turn_id == 2:
                break
        queue.put_nowait(Request(cancel=common_pb2.CancelTurn(turn_id=2)))
        queue.put_nowait(None)
        rest = []
        while (event := await call.read()) is not grpc.aio.EOF:
            rest.append(event)
    assert "done" not in kinds(rest)
    for _ in range(100):  # turn 2's stop is logged just after its cancel lands
        stops = [json.loads(line) for line in log_lines(long_replies, "generation stopped")]
        if len(stops) >= 2:
            break
        await asyncio.sleep(0.1)
    assert [s["reason"] for s in stops] == ["cancelled", "cancelled"]
    assert all(0 < s["tokens"] < LONG_REPLY_TOKENS for s in stops)


async def test_a_static_cache_gives_the_same_greedy_reply(checkpoint: str) -> None:
    # --static-cache on (the CUDA default, where it lets transformers compile the decode step)
    # runs the same model: on CPU it is not compiled, so this checks the cache itself.
    from voxmesh.services.voxtral.engine import Message, Sampling
    from voxmesh.services.voxtral.settings import VoxtralSettings
    from voxmesh.services.voxtral.transformers_engine import TransformersEngine

    replies = []
    for static_cache in ("off", "on"):
        settings = VoxtralSettings(
            engine="transformers",
            model=checkpoint,
            realtime_model="",
            device="cpu",
            static_cache=static_cache,
        )
        engine = TransformersEngine(settings)
        assert engine.static_cache == (static_cache == "on")
        await engine.start()
        try:
            messages = [Message("system", "Be brief."), Message("user", "good morning")]
            deltas = [d async for d in engine.generate(messages, Sampling(24, 0.0, 1.0))]
            # One static cache, sized once for the context (no recompiles), or none.
            assert engine.worker.cache_tokens == (engine.context_tokens if static_cache == "on" else 0)
        finally:
            await engine.close()
        assert deltas[-1].generated_tokens == 24 or deltas[-1].finish_reason == "stop"
        replies.append(("".join(d.text for d in deltas), deltas[-1].generated_tokens))
    assert replies[0] == replies[1]


THREE_TURNS = (SENTENCE, "and what about tomorrow morning", "thank you, that is all for now")
INSTRUCTIONS = "Answer in one short sentence."


@pytest.mark.parametrize("mode", [common_pb2.TURN_MODE_AUDIO, common_pb2.TURN_MODE_STREAM])
async def test_three_turns_each_prompt_holds_every_earlier_turn_in_order_and_the_instructions(
    checkpoint: str, mode: int
) -> None:
    # The defect: in audio mode a turn kept no user text, so turn 2's prompt opened with the
    # replies merged and no user turn. Here every prompt the model receives must hold the
    # earlier turns' transcripts and replies, alternating, and the session's instructions
    # in the turn being answered (after its audio in audio mode: the model card's layout).
    from tests.integration.voxtral_conversation import assert_three_turn_prompts, converse
    from voxmesh.services.voxtral.settings import VoxtralSettings
    from voxmesh.services.voxtral.transformers_engine import TransformersEngine

    settings = VoxtralSettings(
        engine="transformers",
        model=checkpoint,
        realtime_model="",  # as the compose/Helm GPU profiles run audio mode
        device="cpu",
        dtype="float32",
        max_model_len=2048,
        max_reply_tokens=REPLY_TOKENS,
        temperature=1.0,
    )
    engine = TransformersEngine(settings)
    await engine.start()
    try:
        conversation = await converse(
            engine,
            settings,
            voxtral_pb2.RespondConfig(session_id="t", mode=mode, system_prompt=INSTRUCTIONS),
            [speak(text) for text in THREE_TURNS],
        )
    finally:
        await engine.close()
    assert_three_turn_prompts(conversation, mode, INSTRUCTIONS)


async def test_a_long_system_prompt_drops_old_turns_instead_of_failing_a_turn(checkpoint: str) -> None:
    # The defect: the history budget ignored the system prompt's tokens, so with long
    # instructions a conversation grew past the context and its next turn failed (or its reply
    # was cut short). Counted, the instructions make old turns go first; every turn is answered.
    from tests.integration.voxtral_conversation import converse
    from voxmesh.services.voxtral.settings import VoxtralSettings
    from voxmesh.services.voxtral.transformers_engine import TransformersEngine

    settings = VoxtralSettings(
        engine="transformers",
        model=checkpoint,
        realtime_model="",
        device="cpu",
        dtype="float32",
        max_model_len=CONTEXT_TOKENS,
        max_reply_tokens=REPLY_TOKENS,
        temperature=1.0,
    )
    engine = TransformersEngine(settings)
    await engine.start()
    try:
        instructions = "Always answer politely, briefly and in plain words. " * 20
        turns = [f"Turn {n}: " + "please tell me more about the weather today. " * 8 for n in range(1, 7)]
        # Sized so that the instructions and four earlier turns overflow the context.
        assert engine.count_tokens(instructions) > CONTEXT_TOKENS // 4
        assert 4 * engine.count_tokens(turns[0]) > CONTEXT_TOKENS - engine.count_tokens(instructions)
        conversation = await converse(
            engine, settings, voxtral_pb2.RespondConfig(session_id="t", system_prompt=instructions), turns
        )
    finally:
        await engine.close()
    assert not [e for e in conversation.events if e.WhichOneof("event") == "failed"]
    for turn in range(1, 7):
        (done,) = conversation.of_turn(turn, "done")
        # The reply keeps its whole cap: the prompt left room for it.
        assert done.prompt_tokens + REPLY_TOKENS <= CONTEXT_TOKENS
        assert done.finish_reason == "stop" or done.generated_tokens == REPLY_TOKENS
    last = conversation.reply_prompts[-1]
    assert last.count(instructions.strip()) == 1  # in force on the last turn too
    assert "Turn 1:" not in last and "Turn 5:" in last  # the oldest turns made room
