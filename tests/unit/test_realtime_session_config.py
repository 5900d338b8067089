"""session.update → the Converse config: what maps, and what is refused naming its field."""

from __future__ import annotations

import pytest

from voxmesh.realtime.protocol_error import ProtocolError
from voxmesh.realtime.session_config import EdgeSessionConfig


def test_defaults_are_openai_pcm_24k_with_server_vad() -> None:
    config = EdgeSessionConfig()
    assert config.gateway_config() == {
        "sample_rate_hz": 24000,
        "output_sample_rate_hz": 24000,
        "voice": "",
        "language": "",
        "system_prompt": "",
        "vad_sensitivity": "",
    }
    assert config.as_json(None)["audio"]["input"]["turn_detection"]["type"] == "server_vad"


def test_a_full_update_maps_onto_the_gateway_config() -> None:
    config = EdgeSessionConfig().updated(
        {
            "type": "realtime",
            "model": "gpt-realtime",
            "instructions": "Be brief.",
            "output_modalities": ["audio"],
            "audio": {
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "transcription": {"model": "whisper-1", "language": "fr"},
                    "turn_detection": {"type": "server_vad", "threshold": 0.9},
                },
                "output": {"format": {"type": "audio/pcm", "rate": 16000}, "voice": "leah"},
            },
            "tools": [],
        }
    )
    assert config.gateway_config() == {
        "sample_rate_hz": 8000,
        "output_sample_rate_hz": 16000,
        "voice": "leah",
        "language": "fr",
        "system_prompt": "Be brief.",
        "vad_sensitivity": "low",
    }
    manual = config.updated({"audio": {"input": {"turn_detection": None}}})
    assert not manual.server_vad and manual.as_json(None)["audio"]["input"]["turn_detection"] is None


@pytest.mark.parametrize(
    ("session", "param"),
    [
        ({"type": "transcription"}, "session.type"),
        ({"output_modalities": ["text"]}, "session.output_modalities"),
        ({"tools": [{"type": "function", "name": "f"}]}, "session.tools"),
        ({"max_output_tokens": 100}, "session.max_output_tokens"),
        ({"instructions": 5}, "session.instructions"),
        (
            {"audio": {"input": {"noise_reduction": {"type": "near_field"}}}},
            "session.audio.input.noise_reduction",
        ),
        (
            {"audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}},
            "session.audio.input.turn_detection.type",
        ),
        (
            {"audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 200}}}},
            "session.audio.input.turn_detection.silence_duration_ms",
        ),
        (
            {"audio": {"input": {"turn_detection": {"type": "server_vad", "create_response": False}}}},
            "session.audio.input.turn_detection.create_response",
        ),
        (
            {"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 2}}}},
            "session.audio.input.turn_detection.threshold",
        ),
        ({"audio": {"output": {"speed": 1.5}}}, "session.audio.output.speed"),
        ({"audio": {"output": {"voice": None}}}, "session.audio.output.voice"),
        ({"audio": {"video": {}}}, "session.audio.video"),
        ({"temperature": 0.8}, "session.temperature"),
        ("not an object", "session"),
    ],
)
def test_unsupported_values_name_the_field(session: object, param: str) -> None:
    with pytest.raises(ProtocolError) as err:
        EdgeSessionConfig().updated(session)
    assert err.value.param == param
