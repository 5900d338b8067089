"""The Realtime audio formats ⇄ PCM16 at a known rate (what the gateway takes and gives).

OpenAI's GA formats: ``audio/pcm`` (PCM16 little-endian, 24 kHz; voxmesh also
takes any rate the gateway does, 8–48 kHz), ``audio/pcmu`` (G.711 µ-law, 8 kHz)
and ``audio/pcma`` (G.711 A-law, 8 kHz), coded by :mod:`voxmesh.g711` (shared with the phone edge).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import numpy as np

from voxmesh.audio import MAX_SAMPLE_RATE_HZ, MIN_SAMPLE_RATE_HZ
from voxmesh.g711 import G711_RATE_HZ, alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from voxmesh.realtime.protocol_error import ProtocolError

PCM = "audio/pcm"
PCMU = "audio/pcmu"
PCMA = "audio/pcma"
OPENAI_PCM_RATE_HZ = 24_000
#: One append may carry at most this much audio once decoded (OpenAI's limit is 15 MiB of base64).
MAX_APPEND_BYTES = 15 * 1024 * 1024


@dataclass(frozen=True)
class AudioFormat:
    type: str = PCM
    rate_hz: int = OPENAI_PCM_RATE_HZ

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type, "rate": self.rate_hz} if self.type == PCM else {"type": self.type}

    @classmethod
    def parse(cls, value: Any, param: str) -> AudioFormat:
        if not isinstance(value, dict):
            raise ProtocolError(
                f"{param} must be an object like {{'type': 'audio/pcm', 'rate': 24000}}", param=param
            )
        kind = value.get("type")
        extra = set(value) - {"type", "rate"}
        if extra:
            raise ProtocolError(
                f"unknown field {sorted(extra)[0]!r}",
                param=f"{param}.{sorted(extra)[0]}",
                code="unknown_parameter",
            )
        if kind == PCM:
            rate = value.get("rate", OPENAI_PCM_RATE_HZ)
            if (
                not isinstance(rate, int)
                or isinstance(rate, bool)
                or not MIN_SAMPLE_RATE_HZ <= rate <= MAX_SAMPLE_RATE_HZ
            ):
                raise ProtocolError(
                    f"rate must be an integer in {MIN_SAMPLE_RATE_HZ}..{MAX_SAMPLE_RATE_HZ} Hz, got {rate!r}",
                    param=f"{param}.rate",
                )
            return cls(PCM, rate)
        if kind in (PCMU, PCMA):
            if value.get("rate", G711_RATE_HZ) != G711_RATE_HZ:
                raise ProtocolError(f"{kind} is 8000 Hz only", param=f"{param}.rate")
            return cls(kind, G711_RATE_HZ)
        raise ProtocolError(
            f"type must be one of {PCM!r}, {PCMU!r}, {PCMA!r}, got {kind!r}", param=f"{param}.type"
        )

    def decode(self, audio_b64: Any, param: str = "audio") -> bytes:
        """A client's base64 audio → PCM16 bytes at ``rate_hz``; raises naming ``param``."""
        if not isinstance(audio_b64, str):
            raise ProtocolError("audio must be a base64 string", param=param)
        if len(audio_b64) > MAX_APPEND_BYTES * 4 // 3 + 4:
            raise ProtocolError(f"more than {MAX_APPEND_BYTES} bytes of audio in one event", param=param)
        try:
            raw = base64.b64decode(audio_b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ProtocolError(f"audio is not valid base64 ({exc})", param=param) from None
        if self.type == PCM:
            if len(raw) % 2:
                raise ProtocolError(
                    f"audio/pcm needs whole 16-bit samples: {len(raw)} bytes is an odd count", param=param
                )
            return raw
        codes = np.frombuffer(raw, dtype=np.uint8)
        samples = ulaw_decode(codes) if self.type == PCMU else alaw_decode(codes)
        return samples.astype("<i2").tobytes()

    def encode(self, pcm16: bytes) -> str:
        """PCM16 bytes at ``rate_hz`` → base64 in this format."""
        if self.type == PCM:
            return base64.b64encode(pcm16).decode("ascii")
        samples = np.frombuffer(pcm16, dtype="<i2")
        codes = ulaw_encode(samples) if self.type == PCMU else alaw_encode(samples)
        return base64.b64encode(codes.tobytes()).decode("ascii")
