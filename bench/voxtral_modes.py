"""The two reply modes of the transformers engine, timed on the same utterance.

- ``audio``: Voxtral Mini 3B 2507 answers from the audio itself. After end of
  speech it pays an encoder pass over a whole 30 s window and a prefill of
  ≥ 376 tokens (BEGIN_AUDIO + 375 audio tokens + control tokens).
- ``stream``: Voxtral Realtime transcribes while the user speaks (audio fed at
  real-time pace in 20 ms pieces, as the gateway does); after end of speech
  it only flushes its delay (the right pad), then the reply model prefills
  the transcript as text.

Each turn is timed from end_of_turn to the first reply delta (what the
session reports as ``voxtral_first_token``); the table gives p50 over
``--turns`` turns (after one warm-up turn per mode) and the reply prompt's
size. Weights are random: values do not change compute cost, so on a GPU
``--size full`` (real-size Voxtral Mini 3B 2507 + Voxtral Mini 4B Realtime
2602 shapes, built in memory, no download) gives real figures; the tiny
default only shows the structure of the cost.

    python bench/voxtral_modes.py                                # tiny random checkpoints, CPU
    python bench/voxtral_modes.py --size full --device cuda      # real-size random models
    python bench/voxtral_modes.py --model DIR --realtime-model DIR
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from voxmesh.audio import PIPELINE_SAMPLE_RATE_HZ
from voxmesh.services.voxtral.engine import Message, Sampling
from voxmesh.services.voxtral.random_checkpoint import (
    NUM_SPECIAL_TOKENS,
    VOXTRAL_AUDIO_SECTION,
    VOXTRAL_REALTIME_AUDIO_SECTION,
    save_tokenizer,
    save_voxtral,
    save_voxtral_realtime,
    tekken_with_streaming_audio,
)
from voxmesh.services.voxtral.realtime_transcriber import RealtimeModel
from voxmesh.services.voxtral.settings import VoxtralSettings
from voxmesh.services.voxtral.transformers_engine import TransformersEngine
from voxmesh.synthetic_speech import speak

SENTENCE = "hello, could you please tell me what the weather will be like tomorrow afternoon"
PIECE_S = 0.02

#: Voxtral Mini 3B 2507 (model card / ``VoxtralConfig()``): a Llama-like 3B decoder ...
FULL_TEXT_CONFIG: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 3072,
    "intermediate_size": 8192,
    "num_hidden_layers": 30,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "max_position_embeddings": 32768,
    "rope_theta": 100_000_000.0,
    "rms_norm_eps": 1e-5,
}
#: ... and a Whisper large-v3 encoder.
FULL_AUDIO_CONFIG: dict[str, Any] = {
    "model_type": "voxtral_encoder",
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "num_mel_bins": 128,
    "max_source_positions": 1500,
}
FULL_VOCAB = 131072


def _random_module(cls: Any, config: Any, device: Any, dtype: Any) -> Any:
    import torch

    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            return cls(config).eval()
    finally:
        torch.set_default_dtype(default)


def full_size_models(
    directory: str, device: Any, dtype: Any, delay_ms: int
) -> tuple[Any, Any, RealtimeModel]:
    """Real-size random Voxtral Mini 3B 2507 and Voxtral Mini 4B Realtime 2602, built in memory."""
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer
    from transformers import (
        VoxtralConfig,
        VoxtralForConditionalGeneration,
        VoxtralProcessor,
        VoxtralRealtimeConfig,
        VoxtralRealtimeFeatureExtractor,
        VoxtralRealtimeForConditionalGeneration,
        VoxtralRealtimeProcessor,
        WhisperFeatureExtractor,
    )
    from transformers.tokenization_mistral_common import MistralCommonBackend

    inner = FULL_VOCAB - NUM_SPECIAL_TOKENS
    path = save_tokenizer(str(Path(directory) / "voxtral"), inner)
    tekken = Tekkenizer.from_file(path)
    ids = {"vocab_size": tekken.n_words, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 11}
    config = VoxtralConfig(
        text_config={**FULL_TEXT_CONFIG, **ids},
        audio_config=FULL_AUDIO_CONFIG,
        audio_token_id=tekken.get_special_token("[AUDIO]"),
    )
    model = _random_module(VoxtralForConditionalGeneration, config, device, dtype)
    mel = VOXTRAL_AUDIO_SECTION["audio_encoding_config"]
    processor = VoxtralProcessor(
        WhisperFeatureExtractor(
            feature_size=mel["num_mel_bins"], hop_length=mel["hop_length"], n_fft=mel["window_size"]
        ),
        MistralCommonBackend(tokenizer_path=path),
    )
    rt_dir = Path(directory) / "realtime"
    rt_dir.mkdir(parents=True, exist_ok=True)
    rt_path = rt_dir / "tekken.json"
    rt_path.write_text(json.dumps(tekken_with_streaming_audio(inner)))
    rt_mel = VOXTRAL_REALTIME_AUDIO_SECTION["audio_encoding_config"]
    rt_processor = VoxtralRealtimeProcessor(
        VoxtralRealtimeFeatureExtractor(
            feature_size=rt_mel["num_mel_bins"],
            hop_length=rt_mel["hop_length"],
            n_fft=rt_mel["window_size"],
            win_length=rt_mel["window_size"],
        ),
        MistralCommonBackend(tokenizer_path=str(rt_path)),
    )
    # VoxtralRealtimeConfig()'s defaults are the 4B Realtime 2602's shapes.
    rt_config = VoxtralRealtimeConfig(text_config={"vocab_size": tekken.n_words})
    rt_model = _random_module(VoxtralRealtimeForConditionalGeneration, rt_config, device, dtype)
    return model, processor, RealtimeModel(rt_model, rt_processor, delay_ms, device, dtype)


def utterance(seconds: float) -> np.ndarray:
    speech = speak(SENTENCE)
    target = int(seconds * PIPELINE_SAMPLE_RATE_HZ)
    reps = -(-target // len(speech))
    return np.tile(speech, reps)[:target].astype(np.float32)


async def reply_timing(engine: TransformersEngine, user: Message, sampling: Sampling) -> tuple[float, int]:
    """Seconds to the first reply delta, and the prompt's token count."""
    started = time.perf_counter()
    first = None
    prompt = 0
    async for delta in engine.generate([user], sampling):
        if first is None:
            first = time.perf_counter() - started
        if delta.finish_reason is not None:
            prompt = delta.prompt_tokens
    assert first is not None
    return first, prompt


async def audio_turn(engine: TransformersEngine, audio: np.ndarray, sampling: Sampling) -> dict[str, float]:
    first, prompt = await reply_timing(engine, Message("user", audio=audio), sampling)
    return {"first_delta_s": first, "prompt_tokens": prompt}


async def stream_turn(engine: TransformersEngine, audio: np.ndarray, sampling: Sampling) -> dict[str, float]:
    transcriber = engine.transcriber("en")
    piece = int(PIECE_S * PIPELINE_SAMPLE_RATE_HZ)
    started = time.perf_counter()
    partials = 0
    try:
        for i in range(0, len(audio), piece):
            if await transcriber.feed(audio[i : i + piece]) is not None:
                partials += 1
            await asyncio.sleep(
                max(0.0, started + (i + piece) / PIPELINE_SAMPLE_RATE_HZ - time.perf_counter())
            )
        end_of_turn = time.perf_counter()
        text = await transcriber.finish()
    finally:
        transcriber.close()
    transcript_s = time.perf_counter() - end_of_turn
    # Random weights may transcribe to nothing: the reply prompt then holds a placeholder word.
    first, prompt = await reply_timing(engine, Message("user", text=text or "hello"), sampling)
    return {
        "first_delta_s": transcript_s + first,
        "transcript_tail_s": transcript_s,
        "text_prefill_s": first,
        "prompt_tokens": prompt,
        "partials": partials,
    }


def p50(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(row[key] for row in rows)


async def build_engine(args: argparse.Namespace, tmp: str, max_sessions: int = 4) -> TransformersEngine:
    """The transformers engine on ``--model``/``--realtime-model`` dirs or random checkpoints of ``--size``."""
    settings_kw: dict[str, Any] = {
        "engine": "transformers",
        "device": args.device,
        "dtype": args.dtype,
        "max_reply_tokens": args.reply_tokens,
        "temperature": 1.0,
        "realtime_delay_ms": args.delay_ms,
        "max_model_len": 8192,
        "max_sessions": max_sessions,
    }
    realtime = None
    preloaded = None
    if args.size == "full" and not args.model:
        settings = VoxtralSettings(model="random-full-size", realtime_model="", **settings_kw)
        probe = TransformersEngine(settings)
        model, processor, realtime = full_size_models(tmp, probe.device, probe.dtype, args.delay_ms)
        preloaded = (model, processor)
    else:
        model_dir = args.model or save_voxtral(str(Path(tmp) / "tiny"))
        rt_dir = args.realtime_model or save_voxtral_realtime(str(Path(tmp) / "tiny-realtime"))
        settings = VoxtralSettings(model=model_dir, realtime_model=rt_dir, **settings_kw)
    engine = TransformersEngine(settings, preloaded=preloaded)
    await engine.start()
    if realtime is not None:
        engine.realtime = realtime
    return engine


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        built = time.perf_counter()
        engine = await build_engine(args, tmp)
        device = str(engine.device)
        if engine.device.type == "cuda":
            device += f" ({torch.cuda.get_device_name(engine.device)})"
        results: dict[str, list[dict[str, float]]] = {"audio": [], "stream": []}
        report = {
            "size": "custom" if args.model else args.size,
            "device": device,
            "dtype": str(engine.dtype),
            "static_cache": bool(getattr(engine, "static_cache", False)),
            "start_s": round(time.perf_counter() - built, 1),
            "utterance_s": args.seconds,
            "turns": args.turns,
            "delay_ms": args.delay_ms,
            "transcriber": "realtime" if engine.realtime is not None else "finish-time (fallback)",
            "torch": torch.__version__,
            "python": platform.python_version(),
            "results": results,
        }
        sampling = Sampling(args.reply_tokens, 1.0, 0.95)
        audio = utterance(args.seconds)
        for mode, turn in (("audio", audio_turn), ("stream", stream_turn)):
            await turn(engine, audio, sampling)  # warm-up
            for _ in range(args.turns):
                results[mode].append(await turn(engine, audio, sampling))
                # After every turn: a run cut by a time limit keeps what it measured.
                if args.json:
                    save(args.json, report)
        await engine.close()
    return report


def save(path: str, report: dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(report, f, indent=2)


def table(report: dict[str, Any]) -> str:
    audio, stream = report["results"]["audio"], report["results"]["stream"]
    lines = [
        f"voxtral reply modes — size {report['size']}, {report['device']} {report['dtype']}, "
        f"{report['utterance_s']:g} s utterance, p50 of {report['turns']} turns, "
        f"stream transcriber: {report['transcriber']} (delay {report['delay_ms']} ms)",
        "",
        "| mode | end_of_turn → first reply delta (p50) | after end of speech | reply prompt tokens |",
        "| --- | --- | --- | --- |",
        f"| audio | {1000 * p50(audio, 'first_delta_s'):.0f} ms | encoder over a 30 s window + "
        f"{audio[0]['prompt_tokens']}-token prefill | {audio[0]['prompt_tokens']} |",
        f"| stream | {1000 * p50(stream, 'first_delta_s'):.0f} ms | transcript tail "
        f"{1000 * p50(stream, 'transcript_tail_s'):.0f} ms + text prefill "
        f"{1000 * p50(stream, 'text_prefill_s'):.0f} ms | {stream[0]['prompt_tokens']} |",
        "",
        f"stream partials per turn (p50): {p50(stream, 'partials'):.0f}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="", help="Voxtral 2507 checkpoint dir (default: random, --size)")
    parser.add_argument("--realtime-model", default="", help="Voxtral Realtime checkpoint dir")
    parser.add_argument("--size", choices=("tiny", "full"), default="tiny", help="random checkpoints' size")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="utterance length")
    parser.add_argument("--reply-tokens", type=int, default=8)
    parser.add_argument("--delay-ms", type=int, default=480)
    parser.add_argument("--json", default="", help="write the raw figures here")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    print(table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
