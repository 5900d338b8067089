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
    import torch
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer
    from transformers import (
        GenerationConfig,
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
    text = {
        **TINY_TEXT_CONFIG,
        **(text_config or {}),
        "vocab_size": tekken.n_words,
        "bos_token_id": tekken.bos_id,
        "eos_token_id": tekken.eos_id,
        "pad_token_id": tekken.pad_id,
    }
    config = VoxtralConfig(
        text_config=text, audio_config=audio, audio_token_id=tekken.get_special_token("[AUDIO]")
    )
    torch.manual_seed(seed)
    model: Any = VoxtralForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tekken.bos_id, eos_token_id=tekken.eos_id, pad_token_id=tekken.pad_id
    )
    model.save_pretrained(directory)
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


if __name__ == "__main__":
    import sys

    print(save_voxtral(sys.argv[1] if len(sys.argv) > 1 else "tiny-voxtral"))
