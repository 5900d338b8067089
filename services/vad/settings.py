"""Settings of the vad process: flags and ``VOXMESH_VAD_*`` environment variables."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from voxmesh.settings import ServiceSettings


class VadSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VOXMESH_VAD_", extra="ignore")

    port: int = 50052
    metrics_port: int = 9401
    engine: Literal["webrtcvad", "silero"] = Field("webrtcvad", description="VAD engine")
    pre_roll_ms: int = Field(300, description="Audio kept before the onset, ms")
    hangover_ms: int = Field(500, description="Silence before speech is called ended, ms")
    min_speech_ms: int = Field(90, description="Voiced audio needed to call speech started, ms")
    voice_edge: bool = Field(
        True,
        description="End speech at the last voiced 10 ms block (services/vad/voice_edge.py); off: at the "
        "detector's last voiced frame, its overhang included (as before; for comparisons)",
    )
    end_of_turn: Literal["silence", "smart-turn"] = Field(
        "silence",
        description="Endpointing: a fixed hangover (silence), or a hangover per pause set by Smart Turn v3.2",
    )
    smart_turn_model: str = Field(
        "pipecat-ai/smart-turn-v3",
        description="smart-turn-v3.2-cpu.onnx: a local file or folder, or the hub repo to fetch it from",
    )
    turn_complete_hangover_ms: int = Field(
        200, description="smart-turn: pause at which the model is asked; the turn ends here if complete, ms"
    )
    turn_incomplete_hangover_ms: int = Field(
        1000, description="smart-turn: the hard maximum pause, reached when the model says not complete, ms"
    )
    turn_complete_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="smart-turn: P(complete) at or above which the turn ends"
    )
    turn_doubtful_hangover_ms: int = Field(
        0,
        ge=0,
        description="smart-turn: pause at which a doubtful turn ends (--turn-doubtful-threshold <= P < "
        "--turn-complete-threshold), ms; 0: such a turn waits the maximum",
    )
    turn_doubtful_threshold: float = Field(
        0.1, ge=0.0, le=1.0, description="smart-turn: P(complete) at or above which a turn is doubtful"
    )

    @model_validator(mode="after")
    def _pauses_in_order(self) -> Self:
        if not 0 < self.turn_complete_hangover_ms <= self.turn_incomplete_hangover_ms:
            raise ValueError(
                "turn_complete_hangover_ms must be > 0 and <= turn_incomplete_hangover_ms "
                f"(got {self.turn_complete_hangover_ms} and {self.turn_incomplete_hangover_ms})"
            )
        if self.turn_doubtful_hangover_ms and not (
            self.turn_complete_hangover_ms
            <= self.turn_doubtful_hangover_ms
            <= self.turn_incomplete_hangover_ms
        ):
            raise ValueError(
                "turn_doubtful_hangover_ms must lie between turn_complete_hangover_ms and "
                f"turn_incomplete_hangover_ms (got {self.turn_doubtful_hangover_ms})"
            )
        return self
