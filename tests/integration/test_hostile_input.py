"""Hostile input, property-tested: random bytes and random field values thrown
at the gateway and at each internal service over real gRPC.

Every call must end in time with OK or a documented status (INVALID_ARGUMENT,
RESOURCE_EXHAUSTED), never UNKNOWN or INTERNAL; afterwards the service still
answers a good session and its process is alive. Each service starts once per
module (vad: webrtcvad, voxtral: echo, orpheus: espeak, and a gateway over
those three), so the examples cost a stream each, not a process each.

Each run draws 25 new examples per property (no saved database);
``VOXMESH_HYPOTHESIS_EXAMPLES=200`` explores further by hand.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from voxmesh.audio import float_to_pcm16
from voxmesh.client import AsyncSession, TurnComplete
from voxmesh.processes import ServiceProcess, free_port
from voxmesh.synthetic_speech import silence, speak
from voxmesh.v1 import (
    common_pb2,
    conversation_pb2,
    orpheus_pb2,
    vad_pb2,
    voxtral_pb2,
)

ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}
CALL_TIMEOUT_S = 30.0
EXAMPLES = settings(
    max_examples=int(os.environ.get("VOXMESH_HYPOTHESIS_EXAMPLES", "25")),
    deadline=None,
    database=None,  # no .hypothesis/ folder in the repository
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass(frozen=True)
class Rpc:
    """One bidi method: its path, its request type and its response type."""

    path: str
    request: Any
    response: Any


RPCS = {
    "gateway": Rpc(
        "/voxmesh.v1.Conversation/Converse",
        conversation_pb2.ConverseRequest,
        conversation_pb2.ConverseResponse,
    ),
    "vad": Rpc("/voxmesh.v1.VoiceActivity/Detect", vad_pb2.DetectRequest, vad_pb2.DetectResponse),
    "voxtral": Rpc("/voxmesh.v1.Voxtral/Respond", voxtral_pb2.RespondRequest, voxtral_pb2.RespondResponse),
    "orpheus": Rpc(
        "/voxmesh.v1.Orpheus/Synthesize", orpheus_pb2.SynthesizeRequest, orpheus_pb2.SynthesizeResponse
    ),
}


@pytest.fixture(scope="module")
def services() -> Iterator[dict[str, ServiceProcess]]:
    """vad, voxtral (echo), orpheus (espeak) and a gateway over them, once per module."""
    started: dict[str, ServiceProcess] = {}
    try:
        for name, args in (
            ("vad", []),
            ("voxtral", ["--engine", "echo"]),
            ("orpheus", ["--engine", "espeak"]),
        ):
            started[name] = ServiceProcess(name, free_port(), [*args, "--metrics-port", "-1"]).start()
        for svc in started.values():
            svc.wait_serving(120)
        addresses = [f"--{name}-addr={svc.address}" for name, svc in started.items()]
        gateway = ServiceProcess("gateway", free_port(), [*addresses, "--metrics-port", "-1"])
        started["gateway"] = gateway
        gateway.start().wait_serving(120)
        yield started
    finally:
        for svc in reversed(list(started.values())):
            svc.stop()


async def call(
    address: str, rpc: Rpc, requests: list[Any], raw: bool
) -> tuple[grpc.StatusCode, str, list[Any]]:
    """Send ``requests`` (messages, or raw bytes when ``raw``), drain the answers.

    Returns the status, its details and the answers received.
    """
    serializer: Callable[[Any], bytes] = (lambda b: b) if raw else rpc.request.SerializeToString
    answers: list[Any] = []
    async with grpc.aio.insecure_channel(address) as channel:
        method = channel.stream_stream(
            rpc.path, request_serializer=serializer, response_deserializer=rpc.response.FromString
        )

        async def gen() -> AsyncIterator[Any]:
            for r in requests:
                yield r

        stream = method(gen(), timeout=CALL_TIMEOUT_S)
        try:
            async with asyncio.timeout(CALL_TIMEOUT_S + 5):
                async for answer in stream:
                    answers.append(answer)
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or "", answers
        return grpc.StatusCode.OK, "", answers


def in_band_failures(answers: list[Any]) -> list[str]:
    """TurnFailed (stages) and Error (gateway) events whose code is INTERNAL or UNKNOWN."""
    out = []
    for answer in answers:
        kind = answer.WhichOneof("event")
        if kind in ("failed", "error"):
            failure = getattr(answer, kind)
            if failure.code in ("INTERNAL", "UNKNOWN"):
                out.append(f"{kind}: {failure.code}: {failure.message}")
    return out


#: What grpc's asyncio client reports when the server ends a bidi call while the
#: client is still writing: the client loses the server's status (a known grpc
#: behaviour, not the service's answer). Accepted only if the service logged no
#: unexpected error for the call (checked through its log).
CLIENT_WRITE_RACE = (grpc.StatusCode.INTERNAL, "Internal error from Core")


def unexpected_errors(svc: ServiceProcess) -> list[str]:
    """Log lines of exceptions that the error interceptor turned into INTERNAL."""
    with open(svc.log_path, "rb") as f:
        lines = f.read().decode(errors="replace").splitlines()
    return [line for line in lines if '"unexpected error' in line or "Traceback" in line]


async def check(svc: ServiceProcess, name: str, requests: list[Any], raw: bool) -> None:
    before = len(unexpected_errors(svc))
    code, details, answers = await call(svc.address, RPCS[name], requests, raw)
    if currently_in_test_context():
        event(f"status {code.name}")  # --hypothesis-show-statistics: how deep the examples got
    await asyncio.sleep(0.05)  # let the service flush its log line for this call
    new_errors = unexpected_errors(svc)[before:]
    assert code in ALLOWED or (code, details) == CLIENT_WRITE_RACE, (
        f"{name} answered {code.name}: {details!r}\nrequests: {requests!r}\n--- {name} log ---\n"
        f"{svc.log_tail(40)}"
    )
    assert not new_errors, (
        f"{name} answered {code.name} ({details!r}) but logged an unexpected error\n"
        f"requests: {requests!r}\n--- {name} log ---\n" + "\n".join(new_errors[-3:])
    )
    failures = in_band_failures(answers)
    assert not failures, f"{name} reported {failures} in-band\nrequests: {requests!r}\n" + "\n".join(
        new_errors[-3:]
    )
    assert svc.exit_reason() is None, f"{name} {svc.exit_reason()}:\n{svc.log_tail(40)}"


# --- strategies -------------------------------------------------------------------------------
# Each structured stream opens with a valid config most of the time (so the
# later messages reach the session code), then mixes well-formed messages with
# random field values: odd/even/oversize PCM, any turn id, any unicode text,
# out-of-range enums and rates.

RATES = st.one_of(
    st.sampled_from([0, 1, 7_999, 8_000, 11_025, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 48_001]),
    st.integers(0, 2**32 - 1),
)
SMALL_U32 = st.one_of(st.integers(0, 6_000), st.integers(0, 2**32 - 1))
TURN_IDS = st.one_of(st.integers(0, 4), st.integers(0, 2**32 - 1))
ENUMS = st.one_of(st.integers(0, 5), st.integers(-(2**31), 2**31 - 1))
TEXT = st.text(max_size=200)
WORDS = st.text(min_size=1, max_size=120).filter(str.strip)
#: Odd and even lengths, mostly small; now and then over the 256 KiB chunk bound.
PCM = st.one_of(
    st.binary(max_size=6_400),
    st.integers(256 * 1024 - 2, 256 * 1024 + 3).map(lambda n: b"\x01" * n),
)
EVEN_PCM = st.binary(max_size=6_400).map(lambda b: b[: len(b) // 2 * 2])
TRACE = st.dictionaries(st.one_of(st.sampled_from(["traceparent", "tracestate"]), TEXT), TEXT, max_size=2)
RAW_MESSAGES = st.lists(st.binary(max_size=600), max_size=6)


def stream(
    valid_first: st.SearchStrategy[Any], good: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]
) -> st.SearchStrategy[list[Any]]:
    """An opening (valid 3 times in 4), then up to 6 messages (well-formed 2 times in 3)."""
    # (one_of would flatten the nested one_ofs and weigh every branch alike.)
    first = st.integers(0, 3).flatmap(lambda i: hostile if i == 3 else valid_first)
    rest = st.lists(st.integers(0, 2).flatmap(lambda i: hostile if i == 2 else good), max_size=6)
    return st.tuples(first, rest).map(lambda t: [t[0], *t[1]])


def gateway_config(valid: bool) -> st.SearchStrategy[conversation_pb2.ConverseRequest]:
    if valid:
        fields = st.fixed_dictionaries(
            {
                "input_sample_rate_hz": st.sampled_from([8_000, 16_000, 44_100, 48_000]),
                "input_encoding": st.sampled_from([0, 1]),
                "output_sample_rate_hz": st.sampled_from([0, 8_000, 24_000, 48_000]),
                "voice": st.sampled_from(["", "tara", "leo"]),
                "system_prompt": TEXT,
                "vad_sensitivity": st.integers(0, 4),
                "turn_mode": st.integers(0, 3),
            }
        )
    else:
        fields = st.fixed_dictionaries(
            {
                "input_sample_rate_hz": RATES,
                "input_encoding": ENUMS,
                "output_sample_rate_hz": RATES,
                "voice": st.one_of(st.sampled_from(["", "tara", "leo"]), TEXT),
                "language": st.one_of(st.sampled_from(["", "en", "en-US", "fr"]), TEXT),
                "system_prompt": TEXT,
                "vad_sensitivity": ENUMS,
                "turn_mode": ENUMS,
            }
        )
    return fields.map(
        lambda f: conversation_pb2.ConverseRequest(config=conversation_pb2.SessionConfig(**f))  # type: ignore[arg-type]
    )


def gw_audio(pcm: bytes) -> conversation_pb2.ConverseRequest:
    return conversation_pb2.ConverseRequest(audio=conversation_pb2.AudioChunk(pcm=pcm))


def gw_text(text: str) -> conversation_pb2.ConverseRequest:
    return conversation_pb2.ConverseRequest(text=conversation_pb2.TextInput(text=text))


def gw_control(action: int) -> conversation_pb2.ConverseRequest:
    return conversation_pb2.ConverseRequest(control=conversation_pb2.Control(action=action))  # type: ignore[arg-type]


def gw_key_press(digits: str) -> conversation_pb2.ConverseRequest:
    return conversation_pb2.ConverseRequest(key_press=conversation_pb2.KeyPress(digits=digits))


def gw_playback(turn_id: int, played_ms: float) -> conversation_pb2.ConverseRequest:
    position = conversation_pb2.PlaybackPosition(turn_id=turn_id, played_ms=played_ms)
    return conversation_pb2.ConverseRequest(playback=position)


#: Any double: negative, NaN, infinite, huge, subnormal.
PLAYED_MS = st.one_of(st.floats(0, 60_000), st.floats(allow_nan=True, allow_infinity=True))


GATEWAY_STREAM = stream(
    gateway_config(valid=True),
    st.one_of(
        EVEN_PCM.map(gw_audio),
        WORDS.map(gw_text),
        st.sampled_from([1, 2]).map(gw_control),
        st.builds(gw_playback, st.integers(0, 4), st.floats(0, 60_000)),
        st.text(alphabet="0123456789*#ABCD", min_size=1, max_size=32).map(gw_key_press),
    ),
    st.one_of(
        PCM.map(gw_audio),
        TEXT.map(gw_text),
        ENUMS.map(gw_control),
        st.builds(gw_playback, TURN_IDS, PLAYED_MS),
        TEXT.map(gw_key_press),
        gateway_config(valid=False),
        st.just(conversation_pb2.ConverseRequest()),
    ),
)


def vad_config(
    rates: st.SearchStrategy[int], sensitivity: st.SearchStrategy[int], ms: st.SearchStrategy[int]
) -> st.SearchStrategy[vad_pb2.DetectRequest]:
    return st.builds(
        vad_pb2.DetectConfig,
        session_id=TEXT,
        sample_rate_hz=rates,
        sensitivity=sensitivity,
        pre_roll_ms=ms,
        hangover_ms=ms,
        min_speech_ms=ms,
    ).map(lambda c: vad_pb2.DetectRequest(config=c))


VAD_STREAM = stream(
    vad_config(st.sampled_from([8_000, 16_000, 32_000, 48_000]), st.integers(0, 4), st.integers(0, 2_000)),
    EVEN_PCM.map(lambda b: vad_pb2.DetectRequest(audio=b)),
    st.one_of(
        PCM.map(lambda b: vad_pb2.DetectRequest(audio=b)),
        vad_config(RATES, ENUMS, SMALL_U32),
        st.just(vad_pb2.DetectRequest()),
    ),
)


#: A direct caller's history (the gateway hands it over on a new stream): a few
#: exchanges, or many, with any ids, empty or huge sides (over the history budget).
HISTORY = st.lists(
    st.builds(
        voxtral_pb2.Exchange,
        turn_id=TURN_IDS,
        user=st.one_of(TEXT, st.integers(0, 40_000).map(lambda n: "word " * n)),
        assistant=TEXT,
    ),
    max_size=8,
).flatmap(lambda few: st.sampled_from([few, few * 100]))


def voxtral_config(valid: bool) -> st.SearchStrategy[voxtral_pb2.RespondRequest]:
    return st.builds(
        voxtral_pb2.RespondConfig,
        session_id=TEXT,
        mode=st.integers(0, 3) if valid else ENUMS,
        language=st.sampled_from(["", "en", "en-GB"]) if valid else st.one_of(st.just("de"), TEXT),
        system_prompt=TEXT,
        sample_rate_hz=st.sampled_from([0, 16_000]) if valid else RATES,
        history=HISTORY,
    ).map(lambda c: voxtral_pb2.RespondRequest(config=c))


def voxtral_requests(pcm: st.SearchStrategy[bytes], text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(voxtral_pb2.UtteranceAudio, turn_id=TURN_IDS, pcm=pcm).map(
            lambda m: voxtral_pb2.RespondRequest(audio=m)
        ),
        st.builds(voxtral_pb2.EndOfTurn, turn_id=TURN_IDS, trace_context=TRACE).map(
            lambda m: voxtral_pb2.RespondRequest(end_of_turn=m)
        ),
        st.builds(voxtral_pb2.TextTurn, turn_id=TURN_IDS, text=text, trace_context=TRACE).map(
            lambda m: voxtral_pb2.RespondRequest(text=m)
        ),
        st.builds(common_pb2.CancelTurn, turn_id=TURN_IDS, spoken_text=TEXT).map(
            lambda m: voxtral_pb2.RespondRequest(cancel=m)
        ),
    )


VOXTRAL_STREAM = stream(
    voxtral_config(valid=True),
    voxtral_requests(EVEN_PCM, WORDS),
    st.one_of(
        voxtral_requests(PCM, TEXT), voxtral_config(valid=False), st.just(voxtral_pb2.RespondRequest())
    ),
)


def orpheus_config(valid: bool) -> st.SearchStrategy[orpheus_pb2.SynthesizeRequest]:
    return st.builds(
        orpheus_pb2.SynthesizeConfig,
        session_id=TEXT,
        voice=st.sampled_from(["", "tara", "leo", "zac"]) if valid else st.one_of(st.just("nobody"), TEXT),
        sample_rate_hz=st.sampled_from([0, 8_000, 24_000, 48_000]) if valid else RATES,
        language=st.sampled_from(["", "en", "en-US"]) if valid else st.one_of(st.just("ja"), TEXT),
    ).map(lambda c: orpheus_pb2.SynthesizeRequest(config=c))


ORPHEUS_REQUESTS = st.one_of(
    st.builds(orpheus_pb2.TextDelta, turn_id=TURN_IDS, text=TEXT, trace_context=TRACE).map(
        lambda m: orpheus_pb2.SynthesizeRequest(text=m)
    ),
    st.builds(orpheus_pb2.EndOfText, turn_id=TURN_IDS).map(
        lambda m: orpheus_pb2.SynthesizeRequest(end_of_text=m)
    ),
    st.builds(common_pb2.CancelTurn, turn_id=TURN_IDS, spoken_text=TEXT).map(
        lambda m: orpheus_pb2.SynthesizeRequest(cancel=m)
    ),
)
ORPHEUS_STREAM = stream(
    orpheus_config(valid=True),
    ORPHEUS_REQUESTS,
    st.one_of(ORPHEUS_REQUESTS, orpheus_config(valid=False), st.just(orpheus_pb2.SynthesizeRequest())),
)

STRUCTURED = {
    "gateway": GATEWAY_STREAM,
    "vad": VAD_STREAM,
    "voxtral": VOXTRAL_STREAM,
    "orpheus": ORPHEUS_STREAM,
}
#: A valid opening message per service, so raw garbage also reaches the code after the config.
VALID_CONFIG = {
    "gateway": conversation_pb2.ConverseRequest(
        config=conversation_pb2.SessionConfig(input_sample_rate_hz=16_000)
    ).SerializeToString(),
    "vad": vad_pb2.DetectRequest(config=vad_pb2.DetectConfig(sample_rate_hz=16_000)).SerializeToString(),
    "voxtral": voxtral_pb2.RespondRequest(
        config=voxtral_pb2.RespondConfig(session_id="f")
    ).SerializeToString(),
    "orpheus": orpheus_pb2.SynthesizeRequest(config=orpheus_pb2.SynthesizeConfig()).SerializeToString(),
}


# --- good sessions after the abuse ------------------------------------------------------------


async def good_gateway_session(svc: ServiceProcess) -> None:
    async with await AsyncSession.connect(svc.address) as session:
        await session.send_text("are you still there")
        await session.end_input()
        async with asyncio.timeout(CALL_TIMEOUT_S):
            events = [e async for e in session.events()]
    done = [e for e in events if isinstance(e, TurnComplete)]
    assert done and done[0].reply_text, events


async def good_vad_session(svc: ServiceProcess) -> None:
    audio = np.concatenate([silence(0.5), speak("please tell me about the weather today"), silence(1.2)])
    pcm = float_to_pcm16(audio)
    requests = [vad_pb2.DetectRequest(config=vad_pb2.DetectConfig(session_id="good", sample_rate_hz=16_000))]
    requests += [vad_pb2.DetectRequest(audio=pcm[i : i + 640]) for i in range(0, len(pcm), 640)]
    events = await collect(svc, "vad", requests)
    assert [e.WhichOneof("event") for e in events] == ["engine", "speech_started", "speech_ended"]


async def good_voxtral_session(svc: ServiceProcess) -> None:
    requests = [
        voxtral_pb2.RespondRequest(config=voxtral_pb2.RespondConfig(session_id="good")),
        voxtral_pb2.RespondRequest(text=voxtral_pb2.TextTurn(turn_id=1, text="hello there")),
    ]
    events = await collect(svc, "voxtral", requests)
    reply = "".join(e.reply.delta for e in events if e.WhichOneof("event") == "reply")
    assert events[-1].WhichOneof("event") == "done" and "hello there" in reply, events


async def good_orpheus_session(svc: ServiceProcess) -> None:
    requests = [
        orpheus_pb2.SynthesizeRequest(config=orpheus_pb2.SynthesizeConfig(session_id="good")),
        orpheus_pb2.SynthesizeRequest(
            text=orpheus_pb2.TextDelta(turn_id=1, text="Hello there, all is well.")
        ),
        orpheus_pb2.SynthesizeRequest(end_of_text=orpheus_pb2.EndOfText(turn_id=1)),
    ]
    events = await collect(svc, "orpheus", requests)
    done = [e.done for e in events if e.WhichOneof("event") == "done"]
    assert done and done[0].audio_ms > 0, events


async def collect(svc: ServiceProcess, name: str, requests: list[Any]) -> list[Any]:
    """A good session: the answers, with requests held open until the last one is answered."""
    rpc = RPCS[name]
    async with grpc.aio.insecure_channel(svc.address) as channel:
        method = channel.stream_stream(
            rpc.path,
            request_serializer=rpc.request.SerializeToString,
            response_deserializer=rpc.response.FromString,
        )
        finished = asyncio.Event()

        async def gen() -> AsyncIterator[Any]:
            for r in requests:
                yield r
            if name in ("voxtral", "orpheus"):
                await finished.wait()  # half-closing early could drop the reply of the last turn

        events: list[Any] = []
        async with asyncio.timeout(CALL_TIMEOUT_S):
            async for event in method(gen(), timeout=CALL_TIMEOUT_S):
                events.append(event)
                if event.WhichOneof("event") == "done":
                    finished.set()
                    break
        return events


GOOD_SESSION = {
    "gateway": good_gateway_session,
    "vad": good_vad_session,
    "voxtral": good_voxtral_session,
    "orpheus": good_orpheus_session,
}

SERVICES = ["gateway", "vad", "voxtral", "orpheus"]


# --- the properties ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVICES)
@EXAMPLES
@given(messages=RAW_MESSAGES, after_valid_config=st.booleans())
async def test_random_bytes_get_a_documented_status(
    services: dict[str, ServiceProcess], name: str, messages: list[bytes], after_valid_config: bool
) -> None:
    requests = [VALID_CONFIG[name], *messages] if after_valid_config else messages
    await check(services[name], name, requests, raw=True)


@pytest.mark.parametrize("name", SERVICES)
@EXAMPLES
@given(data=st.data())
async def test_random_field_values_get_a_documented_status(
    services: dict[str, ServiceProcess], name: str, data: st.DataObject
) -> None:
    requests = data.draw(STRUCTURED[name], label="requests")
    await check(services[name], name, requests, raw=False)


#: The smallest inputs that the properties above found failing, kept as fixed cases.
KNOWN_CASES = [
    *[(name, [b"\x00"], True) for name in SERVICES],  # a message that does not parse
    ("voxtral", [VALID_CONFIG["voxtral"], b"8"], True),  # ... after a valid config
    (
        "voxtral",  # empty utterance audio, then the end of the turn
        [
            voxtral_pb2.RespondRequest(config=voxtral_pb2.RespondConfig(session_id="f")),
            voxtral_pb2.RespondRequest(audio=voxtral_pb2.UtteranceAudio(turn_id=1, pcm=b"")),
            voxtral_pb2.RespondRequest(end_of_turn=voxtral_pb2.EndOfTurn(turn_id=1)),
        ],
        False,
    ),
    (
        "gateway",  # the gateway's way to the same: an empty audio chunk
        [VALID_CONFIG["gateway"], gw_audio(b"").SerializeToString(), gw_control(2).SerializeToString()],
        True,
    ),
]


@pytest.mark.parametrize(
    ("name", "requests", "raw"),
    KNOWN_CASES,
    ids=["undecodable-" + n for n in SERVICES]
    + ["voxtral-undecodable-after-config", "voxtral-empty-audio", "gateway-empty-audio"],
)
async def test_known_hostile_inputs(
    services: dict[str, ServiceProcess], name: str, requests: list[Any], raw: bool
) -> None:
    await check(services[name], name, requests, raw)


@pytest.mark.parametrize("name", SERVICES)
async def test_still_serves_after_the_abuse(services: dict[str, ServiceProcess], name: str) -> None:
    """Runs after the properties above (file order): a good session works, the process lives."""
    svc = services[name]
    await GOOD_SESSION[name](svc)
    assert svc.exit_reason() is None, f"{name} {svc.exit_reason()}:\n{svc.log_tail(40)}"
