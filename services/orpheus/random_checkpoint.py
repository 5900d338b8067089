"""Randomly initialised Orpheus-shaped checkpoints, built offline (tests and benchmarks).

No weights can be downloaded where the tests run, so they drive the real
code paths with the real architectures at random init: a ``LlamaForCausalLM``
with Orpheus' vocabulary layout (156 940 ids: Llama's 128 256, 10 control
tokens, 7 × 4096 audio ids) and a 24 kHz SNAC. Random weights make noise,
not speech; what they exercise is shapes, the token protocol, streaming and
timing.

The text tokenizer is a byte-level BPE with no merges (ids 0..255), built
with ``tokenizers``: the prompt's special ids (BOS, start/end of human,
start of speech…) are not in it; :func:`prompt_ids` inserts them directly,
which is also what it does with the real Llama-3 tokenizer.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from voxmesh.services.orpheus.snac_decoder import SNAC_24KHZ_CONFIG

#: Orpheus 3B's vocabulary size (every audio id < 156 938 exists).
ORPHEUS_VOCAB_SIZE = 156_940

#: Llama-3.2-3B's architecture with Orpheus' vocabulary (canopylabs/orpheus-3b-0.1-ft).
ORPHEUS_3B_CONFIG: dict[str, Any] = {
    "vocab_size": ORPHEUS_VOCAB_SIZE,
    "hidden_size": 3072,
    "intermediate_size": 8192,
    "num_hidden_layers": 28,
    "num_attention_heads": 24,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "max_position_embeddings": 131_072,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500_000.0,
    "rope_scaling": {
        "rope_type": "llama3",
        "factor": 32.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    },
    "tie_word_embeddings": True,
    "bos_token_id": 128_000,
    "eos_token_id": 128_009,
}

#: A tiny model with the same vocabulary (head_dim 32: vLLM's CPU kernels need >= 32).
TINY_ORPHEUS_CONFIG: dict[str, Any] = {
    **ORPHEUS_3B_CONFIG,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 32,
    "max_position_embeddings": 4096,
    "rope_scaling": None,
}

#: A small SNAC with the 24 kHz model's rates (so frames are 2048 samples).
TINY_SNAC_CONFIG: dict[str, Any] = {**SNAC_24KHZ_CONFIG, "encoder_dim": 8, "decoder_dim": 64}


def byte_tokenizer() -> Any:
    """A byte-level BPE tokenizer with no merges, as a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: index for index, symbol in enumerate(sorted(alphabet))}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer)


def random_llama(config: dict[str, Any], dtype: torch.dtype = torch.float32, seed: int = 0) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    model: Any = LlamaForCausalLM(LlamaConfig(**config))
    return model.to(dtype).eval()


def random_snac(config: dict[str, Any], seed: int = 0) -> Any:
    from snac import SNAC

    torch.manual_seed(seed)
    return SNAC(**config).eval()


def make_frame_following(model: Any, seed: int = 0, end_id: int | None = None) -> Any:
    """Set a random tiny model's weights so that it speaks well-formed frames.

    Attention and MLP outputs are zeroed, so the logits depend only on the
    last token: its embedding carries its slot as a large value on dimension
    ``slot`` (START_OF_SPEECH counts as slot 6), and the output rows of slot
    ``k + 1``'s ids read that dimension, so the next token is always the next
    slot's, with random weights on the other dimensions choosing among its
    4096 codes. No logits processor is needed, so any engine (vLLM included)
    produces decodable frames from it; END_OF_SPEECH is never likely, so
    phrases run to the token cap.

    With ``end_id`` (an end-of-speech id), every slot-6 id also carries a
    mark on dimension 7 that only ``end_id``'s output row reads, strongly
    enough to beat every slot-0 id: each phrase is exactly one frame and
    then ``end_id``, the way a real model ends speech.
    """
    from voxmesh.services.orpheus.orpheus_tokens import (
        AUDIO_TOKEN_BASE,
        AUDIO_TOKEN_END,
        CODEBOOK_SIZE,
        CODES_PER_FRAME,
        START_OF_SPEECH,
    )

    config = model.config
    if config.tie_word_embeddings or config.hidden_size < 16:
        raise ValueError("needs untied embeddings and hidden_size >= 16")
    generator = torch.Generator().manual_seed(seed)
    hidden = config.hidden_size
    embed = torch.randn(config.vocab_size, hidden, generator=generator)
    head = torch.zeros(config.vocab_size, hidden)
    for slot in range(CODES_PER_FRAME):
        ids = slice(AUDIO_TOKEN_BASE + slot * CODEBOOK_SIZE, AUDIO_TOKEN_BASE + (slot + 1) * CODEBOOK_SIZE)
        embed[ids, :CODES_PER_FRAME] = 0.0
        embed[ids, slot] = 8.0
        head[ids, CODES_PER_FRAME:] = 0.5 * torch.randn(
            CODEBOOK_SIZE, hidden - CODES_PER_FRAME, generator=generator
        )
        head[ids, (slot - 1) % CODES_PER_FRAME] = 3.0
    embed[START_OF_SPEECH, :CODES_PER_FRAME] = 0.0
    embed[START_OF_SPEECH, CODES_PER_FRAME - 1] = 8.0
    if end_id is not None:
        last_slot = slice(AUDIO_TOKEN_END - CODEBOOK_SIZE, AUDIO_TOKEN_END)
        embed[:, CODES_PER_FRAME] = 0.0
        embed[last_slot, CODES_PER_FRAME] = 8.0
        head[end_id] = 0.0
        head[end_id, CODES_PER_FRAME] = 10.0
    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(embed)
        model.get_output_embeddings().weight.copy_(head)
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
    return model


def save_orpheus(
    directory: str,
    config: dict[str, Any] = TINY_ORPHEUS_CONFIG,
    seed: int = 0,
    frame_following: bool = False,
    end_id: int | None = None,
) -> str:
    """Write a random Orpheus-shaped model + tokenizer to ``directory`` (``from_pretrained`` loads it).

    ``frame_following`` builds the variant of :func:`make_frame_following` (with ``end_id``).
    """
    os.makedirs(directory, exist_ok=True)
    if frame_following:
        untied = random_llama({**config, "tie_word_embeddings": False}, seed=seed)
        model = make_frame_following(untied, seed, end_id)
    else:
        model = random_llama(config, seed=seed)
    model.save_pretrained(directory)
    byte_tokenizer().save_pretrained(directory)
    return directory


def save_snac(directory: str, config: dict[str, Any] = TINY_SNAC_CONFIG, seed: int = 0) -> str:
    """Write a random SNAC as ``config.json`` + ``pytorch_model.bin`` (what ``SNAC.from_pretrained`` reads)."""
    os.makedirs(directory, exist_ok=True)
    snac = random_snac(config, seed)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)
    torch.save(snac.state_dict(), os.path.join(directory, "pytorch_model.bin"))
    return directory
