"""Settings of the orpheus process: flags and ``VOXMESH_ORPHEUS_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from voxmesh.errors import InvalidArgument
from voxmesh.services.orpheus.orpheus_tokens import SAMPLES_PER_FRAME, phrase_token_budget
from voxmesh.settings import ServiceSettings

#: Ids of a phrase's prompt besides its text: the voice name, ": " and six control ids.
PROMPT_OVERHEAD_IDS = 16
#: Orpheus' README: "repetition_penalty>=1.1 is required for stable generations".
STABLE_REPETITION_PENALTY = 1.1


class OrpheusSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VOXMESH_ORPHEUS_", extra="ignore")

    port: int = 50054
    metrics_port: int = 9403
    max_sessions: int = 32
    engine: str = Field("espeak", description="espeak, transformers, vllm or null (overhead benchmark)")
    model: str = Field("canopylabs/orpheus-3b-0.1-ft", description="Orpheus model: hub id or local path")
    snac_model: str = Field("hubertsiuzdak/snac_24khz", description="SNAC decoder: hub id or local path")
    device: str = Field("auto", description="transformers: cuda, cpu or auto")
    dtype: str = Field("auto", description="transformers: bfloat16, float16, float32 or auto")
    vllm_max_model_len: int = Field(
        2048, ge=256, description="vllm: context per request (a phrase's prompt + its audio tokens)"
    )
    gpu_memory_utilization: float = Field(0.35, description="vllm: fraction of GPU memory for this model")
    gpu_startup_lock: str = Field(
        "auto",
        description="vllm: lock file (or directory) held while an engine starts, one engine at a time "
        "per shared GPU; auto: one in the temp directory when a GPU is present; empty: none",
    )
    voice: str = Field("tara", description="Default voice")
    temperature: float = Field(0.6, ge=0, description="Sampling temperature (model card: 0.4-0.6)")
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus sampling")
    repetition_penalty: float = Field(
        1.1,
        ge=1.0,
        description="Repetition penalty: >= 1.1 for stable generation (Orpheus' README); 1.0 (off) starts "
        "with a warning",
    )
    max_phrase_tokens: int = Field(
        1600,
        ge=7,
        description="Audio tokens cap per phrase (19.5 s: max_phrase_chars spoken 1.5x slower than usual); "
        "each phrase is capped lower, from its length (phrase_token_cap)",
    )
    static_cache: str = Field(
        "auto",
        description="transformers: static KV cache + compiled decode step (auto = on CUDA only), on or off",
    )
    snac_left_frames: int = Field(3, ge=0, description="SNAC window: frames of left context (3 = exact)")
    snac_first_lookahead_frames: int = Field(
        1,
        ge=0,
        description="SNAC window: right context of a phrase's first chunk (time to first audio); "
        "more than snac_lookahead_frames buffers that many frames against decode jitter",
    )
    snac_lookahead_frames: int = Field(
        1,
        ge=0,
        description="SNAC window: right context of later chunks (1: -42 dB, 2: -80 dB, 3 = exact); "
        "at most snac_first_lookahead_frames, else playback stalls below 2x real time",
    )
    snac_crossfade_samples: int = Field(
        128, ge=0, description="SNAC window seams: crossfade length at 24 kHz"
    )
    snac_max_emit_frames: int = Field(8, ge=1, description="SNAC window: most frames one decode emits")
    snac_max_batch: int = Field(16, ge=1, description="SNAC decode: most windows in one batch (all sessions)")
    snac_max_wait_ms: float = Field(3.0, ge=0, description="SNAC decode: longest wait to fill a batch")
    first_audio_priority: bool = Field(
        True,
        description="Under load, serve a turn's first phrase (vllm: priority scheduling) and a phrase's "
        "first SNAC window ahead of later work (time to first audio)",
    )
    snac_noise_seed: int = Field(0, description="SNAC decoder noise: seed of the positional noise tables")
    test_audio_frames_only: bool = Field(
        False,
        description="TEST ONLY: constrain sampling to well-formed audio frames (random-weight checkpoints)",
    )
    first_clause_chars: int = Field(
        24, ge=1, description="First phrase of a turn: cut at a comma once this long (time to first audio)"
    )
    clause_chars: int = Field(60, ge=1, description="Later phrases: cut at a comma once this long")
    max_phrase_chars: int = Field(
        180, ge=16, description="Cut run-on text at a space before this many characters (~12 s of speech)"
    )
    max_turn_chars: int = Field(
        20_000, ge=1, description="Reply text accepted per turn; more fails the turn (INVALID_ARGUMENT)"
    )
    max_queued_turns: int = Field(
        4, ge=1, description="Turns waiting behind the one being spoken; more → INVALID_ARGUMENT"
    )

    def check(self) -> list[str]:
        """Refuse, once at start-up, combinations that cannot work; return warnings for costly ones.

        Raises InvalidArgument naming the setting (one line, no traceback).
        """
        lookahead, first = self.snac_lookahead_frames, self.snac_first_lookahead_frames
        if self.snac_crossfade_samples > min(lookahead, first) * SAMPLES_PER_FRAME:
            raise InvalidArgument(
                "snac_crossfade_samples",
                f"{self.snac_crossfade_samples} samples of crossfade need "
                f"{-(-self.snac_crossfade_samples // SAMPLES_PER_FRAME)} frame(s) of lookahead past each "
                f"chunk (snac_lookahead_frames={lookahead}, snac_first_lookahead_frames={first}); "
                "set it to 0 or raise the lookahead",
            )
        if lookahead > first:
            raise InvalidArgument(
                "snac_lookahead_frames",
                f"{lookahead} frames after a first chunk with {first} stalls playback unless generation "
                f"runs at {1 + lookahead - first:.1f}x real time; use at most snac_first_lookahead_frames",
            )
        prompt_room = self.max_phrase_chars + PROMPT_OVERHEAD_IDS
        if self.engine == "vllm" and self.vllm_max_model_len < self.max_phrase_tokens + prompt_room:
            raise InvalidArgument(
                "vllm_max_model_len",
                f"{self.vllm_max_model_len} cannot hold a phrase's prompt (up to {prompt_room} ids) and "
                f"its {self.max_phrase_tokens} audio tokens (max_phrase_tokens)",
            )
        warnings = []
        if self.repetition_penalty < STABLE_REPETITION_PENALTY:
            # Warned, not refused: 1.0 is a valid setting to compare against,
            # but Orpheus' README says below 1.1 its generation is not stable.
            warnings.append(
                f"repetition_penalty={self.repetition_penalty} is below {STABLE_REPETITION_PENALTY}, which "
                "Orpheus' README requires for stable generation (repeated or runaway audio)"
            )
        needed = phrase_token_budget(self.max_phrase_chars)
        if self.max_phrase_tokens < needed:
            warnings.append(
                f"max_phrase_tokens={self.max_phrase_tokens} may cut a slowly spoken phrase of "
                f"max_phrase_chars={self.max_phrase_chars} characters, which can need {needed}"
            )
        return warnings
