"""Randomly initialised Voxtral checkpoints, built offline: the stand-in for the hub download.

No weights can be downloaded where the tests run, so they drive the real
code paths with the real architecture at random init: a
``VoxtralForConditionalGeneration`` (Whisper-style encoder, 4-frame
projector, Llama decoder) with tiny widths but the real audio geometry
(128 mel bins, 3000 mel frames = 1500 encoder positions per 30 s window,
so one window is 375 audio tokens, exactly as Voxtral Mini 3B), saved with
``save_pretrained`` beside a processor (Whisper feature extractor + the
mistral-common tokenizer) so that ``--model DIR`` loads it like a hub id.

The tokenizer is a real ``tekken.json``: mistral-common's bundled
``tekken_240911.json`` vocabulary (trimmed to ``inner_vocab`` ranks) with an
explicit special-token table and the audio section Voxtral's tokenizer has
(16 kHz, 12.5 audio tokens/s, 128 mel bins, 30 s chunks). The ranks given
here to ``[AUDIO]``, ``[BEGIN_AUDIO]`` and ``[TRANSCRIBE]`` are this file's
choice, not a claim about Voxtral's real tokenizer: code and tests look them
up by name. Random weights produce random text; what they exercise is
prompt building, shapes, streaming, limits and timing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

#: Tokenizer file version: Voxtral Mini 3B 2507's tokenizer is before v13 (no system prompt beside audio).
TEKKEN_VERSION = "v7"
NUM_SPECIAL_TOKENS = 1000

#: Special tokens by rank (the rest are ``<SPECIAL_n>`` fillers).
SPECIAL_TOKENS: dict[int, str] = {
    0: "<unk>",
    1: "<s>",
    2: "</s>",
    3: "[INST]",
    4: "[/INST]",
    5: "[AVAILABLE_TOOLS]",
    6: "[/AVAILABLE_TOOLS]",
    7: "[TOOL_RESULTS]",
    8: "[/TOOL_RESULTS]",
    9: "[TOOL_CALLS]",
    10: "[IMG]",
    11: "<pad>",
    12: "[IMG_BREAK]",
    13: "[IMG_END]",
    14: "[PREFIX]",
    15: "[MIDDLE]",
    16: "[SUFFIX]",
    17: "[SYSTEM_PROMPT]",
    18: "[/SYSTEM_PROMPT]",
    19: "[TOOL_CONTENT]",
    24: "[AUDIO]",
    25: "[BEGIN_AUDIO]",
    32: "[ARGS]",
    33: "[CALL_ID]",
    34: "[TRANSCRIBE]",
}

#: The audio section of Voxtral's tekken.json (mistral-common ``AudioConfig``).
VOXTRAL_AUDIO_SECTION: dict[str, Any] = {
    "sampling_rate": 16_000,
    "frame_rate": 12.5,
    "audio_encoding_config": {"num_mel_bins": 128, "hop_length": 160, "window_size": 400},
    "chunk_length_s": 30.0,
}

#: Tiny widths, real audio geometry. ``intermediate_size`` of the encoder must be
#: 4 × its ``hidden_size``: the projector packs 4 encoder frames into one token.
TINY_TEXT_CONFIG: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 32,
    "max_position_embeddings": 4096,
    "rope_theta": 100_000_000.0,
    "rms_norm_eps": 1e-5,
}
TINY_AUDIO_CONFIG: dict[str, Any] = {
    "model_type": "voxtral_encoder",
    "hidden_size": 32,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_mel_bins": 128,
    "max_source_positions": 1500,
}


def bundled_tekken_path() -> Path:
    import mistral_common

    return Path(mistral_common.__file__).parent / "data" / "tekken_240911.json"


def tekken_with_audio(inner_vocab: int = 7192) -> dict[str, Any]:
    """A tekken.json document: the bundled vocabulary's first ``inner_vocab`` ranks + specials + audio."""
    with open(bundled_tekken_path()) as f:
        bundled = json.load(f)
    if not 256 <= inner_vocab <= len(bundled["vocab"]):
        raise ValueError(f"inner_vocab must be within 256..{len(bundled['vocab'])}")
    special = [
        {"rank": rank, "token_str": SPECIAL_TOKENS.get(rank, f"<SPECIAL_{rank}>"), "is_control": True}
        for rank in range(NUM_SPECIAL_TOKENS)
    ]
    return {
        "config": {
            **bundled["config"],
            "version": TEKKEN_VERSION,
            "num_vocab_tokens": inner_vocab,
            "default_vocab_size": NUM_SPECIAL_TOKENS + inner_vocab,
            "default_num_special_tokens": NUM_SPECIAL_TOKENS,
        },
        "vocab": bundled["vocab"][:inner_vocab],
        "special_tokens": special,
        "audio": VOXTRAL_AUDIO_SECTION,
    }


def save_tokenizer(directory: str, inner_vocab: int = 7192) -> str:
    """Write ``tekken.json`` to ``directory``; returns its path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "tekken.json")
    with open(path, "w") as f:
        json.dump(tekken_with_audio(inner_vocab), f)
    return path


def _token_ids(tekken: Any) -> dict[str, int]:
    """The text config's vocabulary size and special ids, from the tokenizer they must match."""
    return {
        "vocab_size": tekken.n_words,
        "bos_token_id": tekken.bos_id,
        "eos_token_id": tekken.eos_id,
        "pad_token_id": tekken.pad_id,
    }


def _save_random_model(directory: str, model_class: Any, config: Any, tekken: Any, seed: int) -> None:
    """``model_class(config)`` at seeded random init, with the tokenizer's ids for generation, saved."""
    import torch
    from transformers import GenerationConfig

    torch.manual_seed(seed)
    model = model_class(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tekken.bos_id, eos_token_id=tekken.eos_id, pad_token_id=tekken.pad_id
    )
    model.save_pretrained(directory)


def save_voxtral(
    directory: str,
    text_config: dict[str, Any] | None = None,
    audio_config: dict[str, Any] | None = None,
    inner_vocab: int = 7192,
    seed: int = 0,
) -> str:
    """Write a random Voxtral + processor to ``directory`` (``--model DIR`` loads it).

    ``text_config`` / ``audio_config``: overrides of the tiny defaults; pass
    ``VoxtralConfig()``'s own (Mini 3B) values for a full-size model.
    """
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer
    from transformers import (
        VoxtralConfig,
        VoxtralForConditionalGeneration,
        VoxtralProcessor,
        WhisperFeatureExtractor,
    )
    from transformers.tokenization_mistral_common import MistralCommonBackend

    tokenizer_path = save_tokenizer(directory, inner_vocab)
    tekken = Tekkenizer.from_file(tokenizer_path)
    audio = {**TINY_AUDIO_CONFIG, **(audio_config or {})}
    if audio["intermediate_size"] != 4 * audio["hidden_size"]:
        raise ValueError(
            "audio_config: intermediate_size must be 4 × hidden_size (the projector packs 4 frames)"
        )
    text = {**TINY_TEXT_CONFIG, **(text_config or {}), **_token_ids(tekken)}
    config = VoxtralConfig(
        text_config=text, audio_config=audio, audio_token_id=tekken.get_special_token("[AUDIO]")
    )
    _save_random_model(directory, VoxtralForConditionalGeneration, config, tekken, seed)
    mel = VOXTRAL_AUDIO_SECTION["audio_encoding_config"]
    feature_extractor = WhisperFeatureExtractor(
        feature_size=mel["num_mel_bins"],
        sampling_rate=VOXTRAL_AUDIO_SECTION["sampling_rate"],
        hop_length=mel["hop_length"],
        n_fft=mel["window_size"],
        chunk_length=int(VOXTRAL_AUDIO_SECTION["chunk_length_s"]),
    )
    VoxtralProcessor(feature_extractor, MistralCommonBackend(tokenizer_path=tokenizer_path)).save_pretrained(
        directory
    )
    return directory


# ------------------------------------------------------------------ mistral format (vLLM)

#: Encoder widths of the mistral-format tiny Voxtral. vLLM on CPU refuses head_dim < 32.
TINY_ENCODER_ARGS: dict[str, Any] = {
    "dim": 64,
    "n_layers": 2,
    "head_dim": 32,
    "hidden_dim": 256,
    "n_heads": 2,
    "vocab_size": 51_866,
    "max_source_positions": 1500,
}
#: The projector packs this many encoder frames into one audio token (12.5 tokens/s).
DOWNSAMPLE_FACTOR = 4


def mistral_params(
    text_config: dict[str, Any] | None = None,
    encoder_args: dict[str, Any] | None = None,
    vocab_size: int = NUM_SPECIAL_TOKENS + 7192,
    tied_embeddings: bool = True,
) -> dict[str, Any]:
    """The ``params.json`` of a Voxtral in Mistral's own format (what vLLM reads with ``config_format=mistral``).

    Same layout as Voxtral Mini 3B 2507's: the decoder's fields at the top, the
    Whisper-style encoder under ``multimodal.whisper_model_args``. Widths
    default to the tiny ones of :data:`TINY_TEXT_CONFIG` / :data:`TINY_ENCODER_ARGS`.
    """
    text = {**TINY_TEXT_CONFIG, **(text_config or {})}
    mel = VOXTRAL_AUDIO_SECTION["audio_encoding_config"]
    return {
        "dim": text["hidden_size"],
        "n_layers": text["num_hidden_layers"],
        "head_dim": text["head_dim"],
        "hidden_dim": text["intermediate_size"],
        "n_heads": text["num_attention_heads"],
        "n_kv_heads": text["num_key_value_heads"],
        "rope_theta": text["rope_theta"],
        "norm_eps": text["rms_norm_eps"],
        "vocab_size": vocab_size,
        "max_seq_len": text["max_position_embeddings"],
        "max_position_embeddings": text["max_position_embeddings"],
        "tied_embeddings": tied_embeddings,
        "multimodal": {
            "whisper_model_args": {
                "encoder_args": {
                    "audio_encoding_args": {
                        "sampling_rate": VOXTRAL_AUDIO_SECTION["sampling_rate"],
                        "num_mel_bins": mel["num_mel_bins"],
                        "hop_length": mel["hop_length"],
                        "window_size": mel["window_size"],
                    },
                    **TINY_ENCODER_ARGS,
                    **(encoder_args or {}),
                },
                "downsample_args": {"downsample_factor": DOWNSAMPLE_FACTOR},
            }
        },
    }


def mistral_weight_shapes(params: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of ``consolidated.safetensors`` for ``params`` (Mistral's naming)."""
    dim, hidden, heads, kv_heads, head_dim = (
        params["dim"],
        params["hidden_dim"],
        params["n_heads"],
        params["n_kv_heads"],
        params["head_dim"],
    )
    shapes: dict[str, tuple[int, ...]] = {"tok_embeddings.weight": (params["vocab_size"], dim)}
    for i in range(params["n_layers"]):
        p = f"layers.{i}."
        shapes |= {
            p + "attention.wq.weight": (heads * head_dim, dim),
            p + "attention.wk.weight": (kv_heads * head_dim, dim),
            p + "attention.wv.weight": (kv_heads * head_dim, dim),
            p + "attention.wo.weight": (dim, heads * head_dim),
            p + "attention_norm.weight": (dim,),
            p + "feed_forward.w1.weight": (hidden, dim),
            p + "feed_forward.w2.weight": (dim, hidden),
            p + "feed_forward.w3.weight": (hidden, dim),
            p + "ffn_norm.weight": (dim,),
        }
    shapes["norm.weight"] = (dim,)
    if not params.get("tied_embeddings", False):
        shapes["output.weight"] = (params["vocab_size"], dim)

    whisper = params["multimodal"]["whisper_model_args"]
    enc = whisper["encoder_args"]
    factor = whisper["downsample_args"]["downsample_factor"]
    e_dim, e_hidden, e_inner = enc["dim"], enc["hidden_dim"], enc["n_heads"] * enc["head_dim"]
    causal = bool(enc.get("causal"))
    mels = enc["audio_encoding_args"]["num_mel_bins"]
    w = "mm_whisper_embeddings."
    shapes |= {
        w + "whisper_encoder.conv_layers.0.conv.weight": (e_dim, mels, 3),
        w + "whisper_encoder.conv_layers.0.conv.bias": (e_dim,),
        w + "whisper_encoder.conv_layers.1.conv.weight": (e_dim, e_dim, 3),
        w + "whisper_encoder.conv_layers.1.conv.bias": (e_dim,),
    }
    for i in range(enc["n_layers"]):
        p = f"{w}whisper_encoder.transformer.layers.{i}."
        shapes |= {
            p + "attention.wq.weight": (e_inner, e_dim),
            p + "attention.wq.bias": (e_inner,),
            p + "attention.wk.weight": (e_inner, e_dim),  # Whisper's k_proj has no bias
            p + "attention.wv.weight": (e_inner, e_dim),
            p + "attention.wv.bias": (e_inner,),
            p + "attention.wo.weight": (e_dim, e_inner),
            p + "attention.wo.bias": (e_dim,),
            p + "attention_norm.weight": (e_dim,),
            p + "feed_forward.w1.weight": (e_hidden, e_dim),
            p + "feed_forward.w2.weight": (e_dim, e_hidden),
            p + "feed_forward.w2.bias": (e_dim,),
            p + "ffn_norm.weight": (e_dim,),
        }
        if causal:  # Realtime: RMS norms, and a gated (w1, w3) feed-forward without input biases
            shapes[p + "feed_forward.w3.weight"] = (e_hidden, e_dim)
        else:  # 2507: Whisper's layer norms and GELU feed-forward
            shapes |= {
                p + "attention_norm.bias": (e_dim,),
                p + "feed_forward.w1.bias": (e_hidden,),
                p + "ffn_norm.bias": (e_dim,),
            }
    shapes[w + "whisper_encoder.transformer.norm.weight"] = (e_dim,)
    if not causal:
        shapes[w + "whisper_encoder.transformer.norm.bias"] = (e_dim,)
    shapes |= {
        w + "audio_language_projection.0.weight": (dim, e_dim * factor),
        w + "audio_language_projection.2.weight": (dim, dim),
    }
    return shapes


def save_voxtral_mistral(
    directory: str,
    text_config: dict[str, Any] | None = None,
    encoder_args: dict[str, Any] | None = None,
    inner_vocab: int = 7192,
    seed: int = 0,
) -> str:
    """Write a random Voxtral in Mistral's format: ``params.json``, ``consolidated.safetensors``, ``tekken.json``.

    This is the layout of the hub's ``mistralai/Voxtral-*`` repositories that
    vLLM loads with ``tokenizer_mode=mistral``, ``config_format=mistral``,
    ``load_format=mistral`` (the ``vllm`` engine). Weights are N(0, 0.02),
    norms one, biases zero; numpy and safetensors only (no torch, no transformers).
    """
    save_tokenizer(directory, inner_vocab)
    # Untied at random init: a tied head over tiny layers echoes the prompt's last token, so a
    # greedy transcript repeats [TRANSCRIBE] and decodes to nothing (a turn with no words);
    # untied, transcripts are text (as the transformers tiny checkpoint's, untied too).
    params = mistral_params(
        text_config, encoder_args, vocab_size=NUM_SPECIAL_TOKENS + inner_vocab, tied_embeddings=False
    )
    _save_mistral_weights(directory, params, mistral_weight_shapes(params), seed)
    return directory


def _save_mistral_weights(
    directory: str, params: dict[str, Any], shapes: dict[str, tuple[int, ...]], seed: int
) -> None:
    """``params.json`` and random ``consolidated.safetensors`` (N(0, 0.02), norms one, biases zero)."""
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in shapes.items():
        if name.endswith(".bias"):
            tensors[name] = np.zeros(shape, np.float32)
        elif name.endswith("norm.weight"):
            tensors[name] = np.ones(shape, np.float32)
        else:
            tensors[name] = rng.normal(0.0, 0.02, shape).astype(np.float32)
    save_file(tensors, os.path.join(directory, "consolidated.safetensors"))
    with open(os.path.join(directory, "params.json"), "w") as f:
        json.dump(params, f, indent=2)


# ------------------------------------------------------------ Voxtral Realtime

#: Extra special tokens of the realtime tokenizer (ranks are this file's choice; looked up by name).
REALTIME_SPECIAL_TOKENS: dict[int, str] = {35: "[STREAMING_PAD]", 36: "[STREAMING_WORD]"}

#: The streaming audio section of a Voxtral Realtime tekken.json (mistral-common ``AudioConfig``
#: with ``transcription_format="streaming"``): 80 ms per token, no 30 s windows.
VOXTRAL_REALTIME_AUDIO_SECTION: dict[str, Any] = {
    "sampling_rate": 16_000,
    "frame_rate": 12.5,
    "audio_encoding_config": {"num_mel_bins": 128, "hop_length": 160, "window_size": 400},
    "chunk_length_s": None,
    "transcription_format": "streaming",
    "transcription_delay_ms": 480,
    "streaming_look_ahead_ms": 2.5,
    "streaming_look_back_ms": 52.5,
    "streaming_n_left_pad_tokens": 32,
}

TINY_REALTIME_TEXT_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 32,
    "max_position_embeddings": 4096,
    "sliding_window": 4096,
    "rms_norm_eps": 1e-5,
    # Untied at random init: a tied head over tiny layers echoes the input token,
    # so greedy transcripts would repeat one id; untied, they vary with the audio.
    "tie_word_embeddings": False,
}
TINY_REALTIME_AUDIO_CONFIG: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "head_dim": 16,
    "num_mel_bins": 128,
    "max_position_embeddings": 1500,
    "sliding_window": 750,
}


def tekken_with_streaming_audio(inner_vocab: int = 7192, delay_ms: int = 480) -> dict[str, Any]:
    """A realtime tekken.json document: :func:`tekken_with_audio` with the streaming audio section."""
    document = tekken_with_audio(inner_vocab)
    for entry in document["special_tokens"]:
        if entry["rank"] in REALTIME_SPECIAL_TOKENS:
            entry["token_str"] = REALTIME_SPECIAL_TOKENS[entry["rank"]]
    document["audio"] = {**VOXTRAL_REALTIME_AUDIO_SECTION, "transcription_delay_ms": delay_ms}
    return document


def save_voxtral_realtime(
    directory: str,
    text_config: dict[str, Any] | None = None,
    audio_config: dict[str, Any] | None = None,
    inner_vocab: int = 7192,
    seed: int = 0,
) -> str:
    """Write a random Voxtral Realtime + processor to ``directory`` (``--realtime-model DIR`` loads it).

    A ``VoxtralRealtimeForConditionalGeneration`` (causal streaming encoder,
    4-frame projector, time-conditioned Mistral decoder) at tiny widths with
    the real streaming geometry (8 mel frames = 80 ms per token), saved beside
    a ``VoxtralRealtimeProcessor`` whose tekken.json has a streaming audio
    section (480 ms default delay). ``text_config`` / ``audio_config``:
    overrides; ``VoxtralRealtimeConfig()``'s defaults are the 4B model's.
    """
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer
    from transformers import (
        VoxtralRealtimeConfig,
        VoxtralRealtimeFeatureExtractor,
        VoxtralRealtimeForConditionalGeneration,
        VoxtralRealtimeProcessor,
    )
    from transformers.tokenization_mistral_common import MistralCommonBackend

    os.makedirs(directory, exist_ok=True)
    tokenizer_path = os.path.join(directory, "tekken.json")
    with open(tokenizer_path, "w") as f:
        json.dump(tekken_with_streaming_audio(inner_vocab), f)
    tekken = Tekkenizer.from_file(tokenizer_path)
    text = {**TINY_REALTIME_TEXT_CONFIG, **(text_config or {}), **_token_ids(tekken)}
    audio = {**TINY_REALTIME_AUDIO_CONFIG, **(audio_config or {})}
    section = VOXTRAL_REALTIME_AUDIO_SECTION
    config = VoxtralRealtimeConfig(
        text_config=text,
        audio_config=audio,
        tie_word_embeddings=text.get("tie_word_embeddings", True),
        default_num_delay_tokens=int(section["transcription_delay_ms"] * section["frame_rate"] / 1000),
    )
    _save_random_model(directory, VoxtralRealtimeForConditionalGeneration, config, tekken, seed)
    mel = section["audio_encoding_config"]
    feature_extractor = VoxtralRealtimeFeatureExtractor(
        feature_size=mel["num_mel_bins"],
        sampling_rate=section["sampling_rate"],
        hop_length=mel["hop_length"],
        n_fft=mel["window_size"],
        win_length=mel["window_size"],
    )
    VoxtralRealtimeProcessor(
        feature_extractor, MistralCommonBackend(tokenizer_path=tokenizer_path)
    ).save_pretrained(directory)
    return directory


#: What makes a Mistral-format Voxtral the Realtime one (vLLM's ``VoxtralRealtimeGeneration``):
#: a causal, sliding-window encoder with rotary positions, and a decoder whose norms are
#: conditioned on the transcription delay (``ada_rms_norm_t_cond``).
REALTIME_ENCODER_ARGS: dict[str, Any] = {"causal": True, "sliding_window": 750, "pos_embed": "rope"}
ADA_NORM_DIM = 32


def save_voxtral_realtime_mistral(
    directory: str, inner_vocab: int = 7192, delay_ms: int = 480, seed: int = 0
) -> str:
    """Write a random Voxtral Realtime in Mistral's format, the layout vLLM serves for live transcripts.

    The decoder and encoder widths are the tiny ones of :func:`mistral_params`
    (vLLM on CPU needs head_dim >= 32); the tokenizer is
    :func:`tekken_with_streaming_audio` (80 ms per token, ``delay_ms``).
    """
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "tekken.json"), "w") as f:
        json.dump(tekken_with_streaming_audio(inner_vocab, delay_ms), f)
    params = mistral_params(
        encoder_args=REALTIME_ENCODER_ARGS,
        vocab_size=NUM_SPECIAL_TOKENS + inner_vocab,
        # Untied for the same reason as TINY_REALTIME_TEXT_CONFIG's.
        tied_embeddings=False,
    )
    params |= {
        "sliding_window": params["max_seq_len"],
        "ada_rms_norm_t_cond": True,
        "ada_rms_norm_t_cond_dim": ADA_NORM_DIM,
    }
    shapes = mistral_weight_shapes(params)
    for i in range(params["n_layers"]):
        shapes[f"layers.{i}.ada_rms_norm_t_cond.0.weight"] = (ADA_NORM_DIM, params["dim"])
        shapes[f"layers.{i}.ada_rms_norm_t_cond.2.weight"] = (params["dim"], ADA_NORM_DIM)
    _save_mistral_weights(directory, params, shapes, seed)
    return directory


if __name__ == "__main__":
    import sys

    if len(sys.argv) > 2 and sys.argv[2] == "realtime":
        print(save_voxtral_realtime(sys.argv[1]))
    else:
        print(save_voxtral(sys.argv[1] if len(sys.argv) > 1 else "tiny-voxtral"))
