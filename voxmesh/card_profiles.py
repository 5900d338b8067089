"""How one GPU card is split between the vLLM engines, per card size, and the sessions that fit.

Every engine on a shared card gets a fixed fraction of it
(``gpu_memory_utilization``): its weights, its activation peak and CUDA
graphs, and its KV cache all come out of that fraction. Outside the
fractions each process with a CUDA context pays for it, and orpheus' SNAC
decoder runs in the service process. The session limit is what the KV cache
holds when every session has a turn in flight at its longest (the worst
case: vLLM queues or preempts past it, and the latency promise breaks):

- voxtral, one request per turn: history + one 30 s audio window (375 audio
  tokens) + the reply cap + the prompt template;
- Voxtral Realtime (48 GB cards and up), one streaming request per utterance:
  30 s at 12.5 tokens/s + its pads;
- orpheus, one phrase at a time per session: the phrase's prompt + the
  audio-token cap (``max_phrase_tokens``).

A profile takes the smallest card of its class, fits as many sessions as the
memory allows (capped: past it orpheus' real-time token rate, not memory, is
the limit, and that needs a GPU measurement), then gives what is left to the
engines' KV caches in proportion (more prefix cache), keeping a margin
unallocated. Compose (``compose/gpu-*.env``), the Helm chart
(``gpu.memoryProfile``) and the all-in-one image read the same numbers;
tests/deploy/test_card_profiles.py checks all three against this module.

The model figures are from the checkpoints' configs (bf16 weights; KV bytes
per token = 2 × layers × KV heads × head dim × 2 bytes). The per-engine
overheads and the CUDA context size are estimates to be confirmed on a GPU
(``voxmesh_gpu_device_memory_used_bytes`` on the dashboard).

``python -m voxmesh.card_profiles`` prints the table; ``--env NAME`` prints a
profile as ``KEY=VALUE`` lines (the compose env files).
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass

from voxmesh.services.orpheus.settings import OrpheusSettings

GIB = 1024**3

#: Memory every process with a CUDA context pays outside vLLM's fraction (estimate).
CUDA_CONTEXT_GIB = 0.6
#: orpheus' SNAC decoder in the service process: 80 MB of weights + batched decode activations.
SNAC_GIB = 0.5
#: Part of the card left unallocated (fragmentation, NCCL/cuBLAS workspaces, estimate error).
MARGIN = 0.03
#: Above this many sessions the limit is orpheus' real-time token rate (~86 tokens/s of
#: speech per session), which only a GPU benchmark can set.
MAX_SESSIONS = 32

#: voxtral reply request beyond the history: one 30 s audio window, the reply cap, the template.
AUDIO_WINDOW_TOKENS = 375
MAX_REPLY_TOKENS = 256
TEMPLATE_TOKENS = 64
#: Voxtral Realtime: 30 s of audio at 12.5 tokens/s + BOS, pads and delay (vllm_realtime.STREAM_OVERHEAD_TOKENS).
REALTIME_TOKENS = math.ceil(30 * 12.5) + 96
#: orpheus phrase: its prompt (≤ 180 characters of text + voice and markers) + the audio-token cap.
ORPHEUS_PHRASE_TOKENS = 70 + OrpheusSettings.model_fields["max_phrase_tokens"].default


@dataclass(frozen=True)
class Model:
    hub_id: str
    weights_gib: float
    kv_bytes_per_token: int
    #: Activation peak of vLLM's profiling run + CUDA graphs, inside the fraction (estimate).
    overhead_gib: float


def kv_per_token(layers: int, kv_heads: int, head_dim: int = 128, dtype_bytes: int = 2) -> int:
    return 2 * layers * kv_heads * head_dim * dtype_bytes


# Voxtral Mini 3B 2507: 4.7 B parameters (Whisper-large encoder + 3 B decoder: 30 layers, 8 KV heads).
VOXTRAL = Model("mistralai/Voxtral-Mini-3B-2507", 9.4e9 / GIB, kv_per_token(30, 8), 1.0)
# Voxtral Mini 4B Realtime 2602: ~4.4 B parameters (26-layer decoder, 8 KV heads).
VOXTRAL_REALTIME = Model("mistralai/Voxtral-Mini-4B-Realtime-2602", 8.9e9 / GIB, kv_per_token(26, 8), 0.75)
# Orpheus 3B (Llama 3.2 3B + 28 684 audio tokens): 28 layers, 8 KV heads.
ORPHEUS = Model("canopylabs/orpheus-3b-0.1-ft", 6.6e9 / GIB, kv_per_token(28, 8), 0.75)


@dataclass(frozen=True)
class CardSize:
    name: str
    #: Memory of the smallest card of the class as CUDA reports it.
    usable_gib: float
    examples: str
    #: Voxtral Realtime (live partials, ``stream`` mode) loaded too.
    realtime: bool
    history_tokens: int


CARDS = (
    CardSize("24gb", 23034 / 1024, "L4, A10G (22.5 GiB), RTX 4090/3090", False, 1024),
    CardSize("48gb", 46068 / 1024, "L40S, L40, A40 (45 GiB), RTX 6000 Ada, A6000", True, 4096),
    CardSize("80gb", 81559 / 1024, "H100 80GB (79.6 GiB), A100 80GB", True, 4096),
    CardSize("141gb", 143771 / 1024, "H200 (140.4 GiB)", True, 4096),
)


@dataclass(frozen=True)
class Profile:
    card: CardSize
    sessions: int
    voxtral_fraction: float
    realtime_fraction: float  # 0 without Voxtral Realtime
    orpheus_fraction: float

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def voxtral_tokens_per_session(self) -> int:
        return self.card.history_tokens + AUDIO_WINDOW_TOKENS + MAX_REPLY_TOKENS + TEMPLATE_TOKENS

    @property
    def voxtral_max_model_len(self) -> int:
        """The reply model's context: the longest request, rounded up to 1 k."""
        return math.ceil(self.voxtral_tokens_per_session / 1024) * 1024

    def engines(self) -> list[tuple[Model, float, int]]:
        """(model, fraction, KV tokens one session needs) for each engine on the card."""
        out = [(VOXTRAL, self.voxtral_fraction, self.voxtral_tokens_per_session)]
        if self.card.realtime:
            out.append((VOXTRAL_REALTIME, self.realtime_fraction, REALTIME_TOKENS))
        out.append((ORPHEUS, self.orpheus_fraction, ORPHEUS_PHRASE_TOKENS))
        return out

    def outside_gib(self) -> float:
        """CUDA contexts (one per engine core, one for SNAC's process) + SNAC."""
        return (len(self.engines()) + 1) * CUDA_CONTEXT_GIB + SNAC_GIB

    def kv_gib(self, model: Model, fraction: float) -> float:
        """KV cache an engine is left with: its fraction less weights and overhead."""
        return fraction * self.card.usable_gib - model.weights_gib - model.overhead_gib

    def env(self) -> dict[str, str]:
        """The settings of this profile as ``VOXMESH_*`` environment variables."""
        env = {
            "VOXMESH_VOXTRAL_GPU_MEMORY_UTILIZATION": f"{self.voxtral_fraction:.2f}",
            "VOXMESH_VOXTRAL_MAX_MODEL_LEN": str(self.voxtral_max_model_len),
            "VOXMESH_VOXTRAL_HISTORY_TOKENS": str(self.card.history_tokens),
            "VOXMESH_VOXTRAL_MAX_SESSIONS": str(self.sessions),
            "VOXMESH_VOXTRAL_MODE": "stream" if self.card.realtime else "audio",
            "VOXMESH_VOXTRAL_REALTIME_MODEL": VOXTRAL_REALTIME.hub_id if self.card.realtime else "",
            "VOXMESH_ORPHEUS_GPU_MEMORY_UTILIZATION": f"{self.orpheus_fraction:.2f}",
            "VOXMESH_ORPHEUS_MAX_SESSIONS": str(self.sessions),
            "VOXMESH_GATEWAY_MAX_SESSIONS": str(self.sessions),
        }
        if self.card.realtime:
            env["VOXMESH_VOXTRAL_REALTIME_GPU_MEMORY_UTILIZATION"] = f"{self.realtime_fraction:.2f}"
        return env


def _fractions(card: CardSize, sessions: int) -> tuple[float, ...] | None:
    """Each engine's fraction for ``sessions`` (leftover spread over the KV caches), or None if it does not fit."""
    probe = Profile(card, sessions, 0, 0, 0)
    engines = probe.engines()
    budget = card.usable_gib * (1 - MARGIN) - probe.outside_gib()
    fixed = [m.weights_gib + m.overhead_gib for m, _, _ in engines]
    kv = [sessions * tokens * m.kv_bytes_per_token / GIB for m, _, tokens in engines]
    spare = budget - sum(fixed) - sum(kv)
    if spare < 0:
        return None
    # The spare memory goes to the KV caches in proportion; fractions round down so the
    # sum never exceeds the budget (checked again, after rounding, by fits()).
    share = [k / sum(kv) for k in kv]
    return tuple(
        math.floor((f + k + spare * s) / card.usable_gib * 100) / 100
        for f, k, s in zip(fixed, kv, share, strict=True)
    )


def fits(profile: Profile) -> bool:
    """Weights, overheads and every promised session's KV fit each fraction; all fractions fit the card."""
    engines = profile.engines()
    if any(profile.kv_gib(m, f) * GIB < profile.sessions * t * m.kv_bytes_per_token for m, f, t in engines):
        return False
    used = sum(f for _, f, _ in engines) * profile.card.usable_gib + profile.outside_gib()
    return used <= profile.card.usable_gib * (1 - MARGIN)


def build(card: CardSize) -> Profile:
    """The most sessions (≤ MAX_SESSIONS) the card holds, and the fractions for them."""
    for sessions in range(MAX_SESSIONS, 0, -1):
        fractions = _fractions(card, sessions)
        if fractions is None:
            continue
        voxtral, *rest = fractions
        realtime, orpheus = (rest[0], rest[1]) if card.realtime else (0.0, rest[0])
        profile = Profile(card, sessions, voxtral, realtime, orpheus)
        if fits(profile):
            return profile
    raise ValueError(f"{card.name}: the models do not fit")


PROFILES = {card.name: build(card) for card in CARDS}


def table() -> str:
    """The per-card table docs/deploy.md shows."""
    lines = [
        "| card profile | cards | sessions | voxtral | realtime | orpheus | KV per engine (GiB) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in PROFILES.values():
        kv = " / ".join(f"{p.kv_gib(m, f):.1f}" for m, f, _ in p.engines())
        realtime = f"{p.realtime_fraction:.2f}" if p.card.realtime else "—"
        lines.append(
            f"| `{p.name}` | {p.card.examples} | {p.sessions} | {p.voxtral_fraction:.2f} | "
            f"{realtime} | {p.orpheus_fraction:.2f} | {kv} |"
        )
    return "\n".join(lines)


def pick(total_bytes: int) -> Profile:
    """The largest profile whose card is no bigger than this one (a little slack for rounding)."""
    fitting = [p for p in PROFILES.values() if p.card.usable_gib * GIB <= total_bytes * 1.01]
    if not fitting:
        smallest = min(PROFILES.values(), key=lambda p: p.card.usable_gib)
        raise SystemExit(
            f"this card has {total_bytes / GIB:.1f} GiB; the smallest profile ({smallest.name}) needs "
            f"{smallest.card.usable_gib:.1f} GiB"
        )
    return max(fitting, key=lambda p: p.card.usable_gib)


def _card_memory() -> int:
    from voxmesh.gpu_memory import nvml_devices

    read = nvml_devices()
    cards = read() if read is not None else []
    if not cards:
        raise SystemExit(
            "cannot read the GPU's memory through NVML: set VOXMESH_GPU_MEMORY_PROFILE to one of "
            + ", ".join(PROFILES)
        )
    return cards[0][1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m voxmesh.card_profiles", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--env", choices=sorted(PROFILES), help="print one profile as KEY=VALUE lines")
    parser.add_argument(
        "--exec",
        dest="command",
        nargs=argparse.REMAINDER,
        help="run COMMAND with the profile's settings as defaults in its environment (the all-in-one "
        "image's entry point); the profile is VOXMESH_GPU_MEMORY_PROFILE, or picked by the card's memory",
    )
    args = parser.parse_args(argv)
    if args.command:
        name = os.environ.get("VOXMESH_GPU_MEMORY_PROFILE", "auto")
        if name == "auto":
            profile = pick(_card_memory())
        elif name in PROFILES:
            profile = PROFILES[name]
        else:
            raise SystemExit(f"VOXMESH_GPU_MEMORY_PROFILE={name!r}: use auto or one of {', '.join(PROFILES)}")
        # What the pod's own environment sets wins over the profile.
        for key, value in profile.env().items():
            os.environ.setdefault(key, value)
        print(
            f"GPU memory profile {profile.name}: {profile.sessions} sessions, voxtral "
            f"{os.environ['VOXMESH_VOXTRAL_GPU_MEMORY_UTILIZATION']}, orpheus "
            f"{os.environ['VOXMESH_ORPHEUS_GPU_MEMORY_UTILIZATION']}",
            flush=True,
        )
        os.execvp(args.command[0], args.command)
    if args.env:
        for key, value in PROFILES[args.env].env().items():
            print(f"{key}={value}")
    else:
        print(table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
