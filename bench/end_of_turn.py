"""End of turn: Smart Turn's cost and decisions, split turns, and voice-to-voice before/after.

Three measurements on this machine, all on Piper speech (en_US joe; the model
misjudges espeak-ng's flat prosody, so espeak would measure the wrong thing):

(a) the model alone: per-call latency (features + inference, one thread) and
    its decisions on complete sentences vs the same sentences cut in the
    middle, each followed by 200 ms of silence (the judging point);
(b) split turns: the vad service on sentences with a pause of 300-700 ms
    inserted at the quietest point of their middle third (a mid-sentence
    pause), silence-only (500 ms hangover) vs smart-turn; ideal is 1 turn each;
(c) the CPU mesh (vad, voxtral echo, orpheus espeak, gateway as processes),
    complete Piper questions through ``voxmesh talk``'s client at real-time
    pace, 1 and 4 concurrent sessions: voice-to-voice and response latency
    from TurnComplete, and the endpoint's pause on the audio clock; each with
    silence-only or smart-turn endpointing, speculative replies off or on;
(d) the paused utterances of (b) through the same meshes: split turns as the
    client sees them, the tentative replies started, confirmed and
    discarded, with the stage time discarded, and the endpoints held on
    unfinished words (held, then continued or released): the gateway's counters.

    make smart-turn-model && .venv/bin/python -m bench.end_of_turn [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from typing import Any

import grpc
import numpy as np

from tests.piper_speech import piper_speak
from voxmesh.audio import float_to_pcm16
from voxmesh.client import SpeechEnded, TurnComplete
from voxmesh.processes import ServiceProcess, free_port
from voxmesh.services.vad.smart_turn import SmartTurnModel
from voxmesh.synthetic_speech import silence
from voxmesh.talk import talk
from voxmesh.v1 import vad_pb2, vad_pb2_grpc

RATE = 16_000
MODEL = ".tools/models/smart-turn-v3.2-cpu.onnx"
SMART_TURN = ["--end-of-turn", "smart-turn", "--smart-turn-model", MODEL]
SENTENCES = (
    "What time is it?",
    "Please tell me about the weather today.",
    "Can you set a timer for ten minutes?",
    "I would like to book a table for two people tonight.",
    "How far is the nearest train station from here?",
    "Remind me to call my sister tomorrow morning.",
    "What is the capital of Australia?",
    "Play some relaxing music in the living room.",
    "How many grams of sugar are in a teaspoon?",
    "Tell me a joke about cats.",
    "What should I cook for dinner with rice and beans?",
    "Turn off the lights in the kitchen please.",
    "When does the pharmacy on Main Street close?",
    "Could you translate good morning into Spanish?",
    "Is it going to rain this weekend in London?",
    "How do I reset my password for the email account?",
    "Send a message to Anna saying I will be late.",
    "What was the score of the football game last night?",
    "Find me a recipe for chocolate chip cookies.",
    "How long does it take to boil an egg?",
)


def _trimmed(text: str) -> np.ndarray:
    audio = piper_speak(text)
    loud = np.flatnonzero(np.abs(audio) > 0.02)
    return audio[int(loud[0]) : int(loud[-1]) + 1]


def _pct(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "p50": round(float(np.percentile(values, 50)), 1),
        "p95": round(float(np.percentile(values, 95)), 1),
        "n": len(values),
    }


def model_figures(voiced: dict[str, np.ndarray]) -> dict[str, Any]:
    model = SmartTurnModel.load(MODEL)
    model.probability(silence(1.0), RATE)  # first call pays the graph's warm-up
    tail = silence(0.2)
    complete: list[float] = []
    cut: list[float] = []
    at_gap: list[float] = []
    call_ms: list[float] = []
    for audio in voiced.values():
        gap = _quietest_middle_point(audio)
        for bucket, clip in ((complete, audio), (cut, audio[: len(audio) // 2]), (at_gap, audio[:gap])):
            probability, seconds = model.timed_probability(np.concatenate([silence(0.3), clip, tail]), RATE)
            bucket.append(probability)
            call_ms.append(1000 * seconds)
    return {
        "call_ms": _pct(call_ms),
        "complete_judged_complete": f"{sum(p >= 0.5 for p in complete)}/{len(complete)}",
        "cut_mid_word_judged_incomplete": f"{sum(p < 0.5 for p in cut)}/{len(cut)}",
        "cut_at_word_gap_judged_incomplete": f"{sum(p < 0.5 for p in at_gap)}/{len(at_gap)}",
        "complete_probability_median": round(float(np.median(complete)), 3),
        "cut_mid_word_probability_median": round(float(np.median(cut)), 3),
        "cut_at_word_gap_probability_median": round(float(np.median(at_gap)), 3),
    }


def _quietest_middle_point(audio: np.ndarray) -> int:
    """The middle of the quietest 20 ms of ``audio``'s middle third: a gap between words."""
    win = int(0.02 * RATE)
    third = len(audio) // 3
    middle = audio[third : 2 * third]
    energy = [float(np.mean(middle[i : i + win] ** 2)) for i in range(0, len(middle) - win, win // 2)]
    return third + int(np.argmin(energy)) * (win // 2) + win // 2


def with_mid_pause(audio: np.ndarray, pause_s: float) -> np.ndarray:
    """``audio`` with ``pause_s`` of silence inserted between two words of its middle third."""
    cut = _quietest_middle_point(audio)
    return np.concatenate([audio[:cut], silence(pause_s), audio[cut:]])


async def _turns(address: str, audio: np.ndarray) -> list[vad_pb2.DetectResponse]:
    pcm = float_to_pcm16(np.concatenate([silence(0.5), audio, silence(1.5)]))
    requests = [vad_pb2.DetectRequest(config=vad_pb2.DetectConfig(session_id="bench", sample_rate_hz=RATE))]
    requests += [vad_pb2.DetectRequest(audio=pcm[i : i + 640]) for i in range(0, len(pcm), 640)]
    async with grpc.aio.insecure_channel(address) as channel:
        call = vad_pb2_grpc.VoiceActivityStub(channel).Detect(iter(requests), timeout=120)
        return [e async for e in call if e.WhichOneof("event") == "speech_ended"]


async def split_figures(voiced: dict[str, np.ndarray]) -> dict[str, Any]:
    pauses = np.linspace(0.3, 0.7, len(voiced))
    paused = [with_mid_pause(a, float(p)) for a, p in zip(voiced.values(), pauses, strict=True)]
    out: dict[str, Any] = {"utterances": len(paused), "pauses_s": "0.3-0.7"}
    for name, args in (("silence", []), ("smart-turn", SMART_TURN)):
        vad = ServiceProcess("vad", free_port(), [*args, "--metrics-port", "-1"])
        vad.start().wait_serving(120)
        try:
            counts = [len(await _turns(vad.address, audio)) for audio in paused]
            # The complete ones, unpaused: where their endpoint fell after t_end (audio clock).
            ends = [(await _turns(vad.address, audio))[-1] for audio in voiced.values()]
        finally:
            vad.stop()
        out[name] = {
            "split_utterances": sum(c > 1 for c in counts),
            "turns": sum(counts),
            "endpoint_pause_ms": _pct(
                [(e.speech_ended.decided_at_sample - e.speech_ended.last_voiced_sample) / 16 for e in ends]
            ),
        }
    return out


#: (name, vad args, gateway args) of the mesh runs in (c) and (d). Every setting is spelled out,
#: so a changed default does not change what a row measured.
_NO_HOLD = ["--hold-unfinished-ms", "0"]
_HOLD = ["--hold-unfinished-ms", "1000"]
_SMART_TURN_150 = [*SMART_TURN, "--turn-complete-hangover-ms", "150"]
MESH_CONFIGS = (
    ("silence", [], ["--speculate-after-ms", "0", *_NO_HOLD]),
    ("silence+speculation", [], ["--speculate-after-ms", "200", *_NO_HOLD]),
    ("silence+speculation+hold", [], ["--speculate-after-ms", "200", *_HOLD]),
    ("smart-turn", SMART_TURN, ["--speculate-after-ms", "0", *_NO_HOLD]),
    ("smart-turn+speculation", SMART_TURN, ["--speculate-after-ms", "200", *_NO_HOLD]),
    # The pause starts the reply before the model judges it (at 150 ms): both in one window.
    ("smart-turn-150+speculation-100", _SMART_TURN_150, ["--speculate-after-ms", "100", *_NO_HOLD]),
    ("smart-turn-150+speculation-100+hold", _SMART_TURN_150, ["--speculate-after-ms", "100", *_HOLD]),
    # The same with the model trusted only when sure (P >= 0.9): the words catch what it misses.
    (
        "smart-turn-150@0.9+speculation-100+hold",
        [*_SMART_TURN_150, "--turn-complete-threshold", "0.9"],
        ["--speculate-after-ms", "100", *_HOLD],
    ),
)


def _counter(metrics_port: int, name: str, label: str = "") -> float:
    """A counter's value from the gateway's /metrics (0 when not exported yet)."""
    import re
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    selector = rf"\{{{label}\}}" if label else ""
    found = re.search(rf"^{name}{selector} (\S+)$", text, re.MULTILINE)
    return float(found[1]) if found else 0.0


async def mesh_figures(
    voiced: dict[str, np.ndarray], turns: int, configs: list[str] | None = None
) -> dict[str, Any]:
    """(c) complete questions at 1 and 4 sessions, (d) the paused utterances through the mesh."""
    out: dict[str, Any] = {}
    questions = list(voiced.values())
    pauses_s = np.linspace(0.3, 0.7, len(voiced))
    paused = [with_mid_pause(a, float(p)) for a, p in zip(questions, pauses_s, strict=True)]
    for name, vad_args, gateway_args in MESH_CONFIGS:
        if configs and name not in configs:
            continue
        started = []
        try:
            stages = {}
            for stage, extra in (
                ("vad", vad_args),
                ("voxtral", ["--engine", "echo"]),
                ("orpheus", ["--engine", "espeak"]),
            ):
                stages[stage] = ServiceProcess(stage, free_port(), [*extra, "--metrics-port", "-1"])
                started.append(stages[stage].start())
            for svc in started:
                svc.wait_serving(180)
            metrics_port = free_port()
            gateway = ServiceProcess(
                "gateway",
                free_port(),
                [f"--{s}-addr={p.address}" for s, p in stages.items()]
                + ["--metrics-port", str(metrics_port), *gateway_args],
            )
            started.append(gateway.start())
            gateway.wait_serving(60)
            for sessions in (1, 4):
                latencies: dict[str, list[float]] = {"voice_to_voice": [], "response": [], "vad_decision": []}
                pauses: list[float] = []

                async def user(
                    i: int,
                    lat: dict[str, list[float]] = latencies,
                    ps: list[float] = pauses,
                    address: str = gateway.address,
                ) -> None:
                    await asyncio.sleep(0.7 * i)  # not in lockstep
                    for t in range(turns):
                        events: list[object] = []
                        result = await talk(
                            questions[(i * turns + t) % len(questions)],
                            RATE,
                            address,
                            tail_silence_s=1.5,
                            on_event=events.append,
                        )
                        for done in (e for e in events if isinstance(e, TurnComplete)):
                            lat["voice_to_voice"].append(done.latency.voice_to_voice_ms)
                            lat["response"].append(done.latency.response_latency_ms)
                            lat["vad_decision"].append(done.latency.vad_decision_ms)
                        ps += [
                            e.endpoint_offset_ms - e.last_voiced_offset_ms
                            for e in events
                            if isinstance(e, SpeechEnded)
                        ]
                        assert not result.errors, result.errors

                began = time.perf_counter()
                await asyncio.gather(*(user(i) for i in range(sessions)))
                out[f"{name}/{sessions}"] = {
                    **{f"{k}_ms": _pct(v) for k, v in latencies.items()},
                    "endpoint_pause_ms": _pct(pauses),
                    "wall_s": round(time.perf_counter() - began, 1),
                }
                print(name, sessions, json.dumps(out[f"{name}/{sessions}"]), flush=True)
            # (d) the paused utterances, one session: split turns as the client sees them.
            before = {
                o: _counter(metrics_port, "voxmesh_speculative_turns_total", f'outcome="{o}"')
                for o in ("started", "confirmed", "discarded")
            }
            held_before = {
                o: _counter(metrics_port, "voxmesh_held_endpoints_total", f'outcome="{o}"')
                for o in ("held", "continued", "released")
            }
            discarded_s = _counter(metrics_port, "voxmesh_speculative_discarded_seconds_total")
            split = 0
            for audio in paused:
                result = await talk(audio, RATE, gateway.address, tail_silence_s=1.5)
                assert not result.errors, result.errors
                split += len(result.turns) > 1
            counts = {
                o: int(
                    _counter(metrics_port, "voxmesh_speculative_turns_total", f'outcome="{o}"') - before[o]
                )
                for o in before
            }
            out[f"{name}/paused"] = {
                "utterances": len(paused),
                "pauses_s": "0.3-0.7",
                "split_utterances": split,
                "tentative_replies": counts,
                "held_endpoints": {
                    o: int(_counter(metrics_port, "voxmesh_held_endpoints_total", f'outcome="{o}"') - v)
                    for o, v in held_before.items()
                },
                "discarded_s": round(
                    _counter(metrics_port, "voxmesh_speculative_discarded_seconds_total") - discarded_s, 2
                ),
            }
            print(name, "paused", json.dumps(out[f"{name}/paused"]), flush=True)
        finally:
            for svc in reversed(started):
                svc.stop()
    return out


def decoding_cost(voiced: dict[str, np.ndarray]) -> dict[str, Any]:
    """The echo engine's pocketsphinx cost per speaker on this machine: CPU seconds per second
    of audio, fed in 20 ms chunks as the mesh does (one worker holds ~1/cost speakers).
    """
    from voxmesh.services.voxtral.pocketsphinx_pool import DECODER_OPTIONS, make_decoder

    decoder: Any = make_decoder()
    cpu = audio_s = 0.0
    for audio in voiced.values():
        pcm = float_to_pcm16(np.concatenate([silence(0.2), audio, silence(0.3)]))
        began = time.process_time()
        decoder.start_utt()
        for i in range(0, len(pcm), 640):
            decoder.process_raw(pcm[i : i + 640])
            decoder.hyp()
        decoder.end_utt()
        cpu += time.process_time() - began
        audio_s += len(pcm) / (2 * RATE)
    return {"cpu_s_per_audio_s": round(cpu / audio_s, 3), "options": DECODER_OPTIONS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=5, help="turns per session in (c) (default 5)")
    parser.add_argument("--json", default="bench/results/end_of_turn.json")
    parser.add_argument("--skip-mesh", action="store_true", help="only (a) and (b)")
    parser.add_argument("--only-mesh", action="store_true", help="only (c) and (d)")
    parser.add_argument(
        "--configs", default="", help="comma-separated mesh configurations to run (default: all)"
    )
    args = parser.parse_args()
    voiced = {text: _trimmed(text) for text in SENTENCES}
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line), "")
    report: dict[str, Any] = {
        "machine": {"cpu": cpu or platform.processor(), "python": platform.python_version()}
    }
    report["pocketsphinx"] = decoding_cost(voiced)
    print("pocketsphinx", json.dumps(report["pocketsphinx"]), flush=True)
    if not args.only_mesh:
        report["model"] = model_figures(voiced)
        print("model", json.dumps(report["model"]), flush=True)
        report["split_turns"] = asyncio.run(split_figures(voiced))
        print("split", json.dumps(report["split_turns"]), flush=True)
    if not args.skip_mesh:
        chosen = [c for c in args.configs.split(",") if c]
        report["mesh"] = asyncio.run(mesh_figures(voiced, args.turns, chosen))
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
