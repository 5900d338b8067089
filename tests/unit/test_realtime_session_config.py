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
        "end_of_turn": "",
        "eagerness": "",
        "silence_duration_ms": 0,
        "prefix_padding_ms": 0,
        "tools": (),
        "tool_choice": "",
        "tools_wait_for_reply": False,
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
        "end_of_turn": "silence",
        "eagerness": "",
        "silence_duration_ms": 0,
        "prefix_padding_ms": 0,
        "tools": (),
        "tool_choice": "",
        "tools_wait_for_reply": False,
    }
    manual = config.updated({"audio": {"input": {"turn_detection": None}}})
    assert not manual.server_vad and manual.as_json(None)["audio"]["input"]["turn_detection"] is None


@pytest.mark.parametrize(
    ("session", "param"),
    [
        ({"type": "transcription"}, "session.type"),
        ({"output_modalities": ["text"]}, "session.output_modalities"),
        ({"tools": [{"type": "mcp", "server_label": "f"}]}, "session.tools[0].type"),
        ({"tools": [{"type": "function"}]}, "session.tools[0].name"),
        ({"tool_choice": {"type": "mcp"}}, "session.tool_choice"),
        ({"max_output_tokens": 100}, "session.max_output_tokens"),
        ({"instructions": 5}, "session.instructions"),
        (
            {"audio": {"input": {"noise_reduction": {"type": "near_field"}}}},
            "session.audio.input.noise_reduction",
        ),
        (
            {"audio": {"input": {"turn_detection": {"type": "vad_of_the_future"}}}},
            "session.audio.input.turn_detection.type",
        ),
        (
            {"audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "eager"}}}},
            "session.audio.input.turn_detection.eagerness",
        ),
        (
            {"audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": "long"}}}},
            "session.audio.input.turn_detection.silence_duration_ms",
        ),
        (
            {"audio": {"input": {"turn_detection": {"type": "server_vad", "idle_timeout_ms": 5000}}}},
            "session.audio.input.turn_detection.idle_timeout_ms",
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


@pytest.mark.parametrize(
    ("eagerness", "gateway"), [("low", "low"), ("medium", "medium"), ("high", "high"), ("auto", "medium")]
)
def test_semantic_vad_and_its_eagerness_map_onto_the_end_of_turn_model(eagerness: str, gateway: str) -> None:
    # What LiveKit's RealtimeModel sends by default (eagerness "auto").
    turn = {
        "type": "semantic_vad",
        "eagerness": eagerness,
        "create_response": True,
        "interrupt_response": True,
    }
    config = EdgeSessionConfig().updated({"audio": {"input": {"turn_detection": turn}}})
    assert config.gateway_config()["end_of_turn"] == "semantic"
    assert config.gateway_config()["eagerness"] == gateway
    shown = config.as_json(None)["audio"]["input"]["turn_detection"]
    assert shown["type"] == "semantic_vad" and shown["eagerness"] == eagerness


def test_server_vad_timings_map_per_session_and_out_of_bounds_values_are_clamped_and_said() -> None:
    turn = {"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 350, "prefix_padding_ms": 300}
    config = EdgeSessionConfig().updated({"audio": {"input": {"turn_detection": turn}}})
    assert config.gateway_config()["silence_duration_ms"] == 350
    assert config.gateway_config()["prefix_padding_ms"] == 300
    assert config.gateway_config()["end_of_turn"] == "silence"
    assert config.adjustments == ()

    extreme = {"type": "server_vad", "silence_duration_ms": 20, "prefix_padding_ms": 0}
    clamped = config.updated({"audio": {"input": {"turn_detection": extreme}}})
    assert clamped.gateway_config()["silence_duration_ms"] == 100
    assert clamped.gateway_config()["prefix_padding_ms"] == 1
    assert [a.split(":")[0] for a in clamped.adjustments] == [
        "session.audio.input.turn_detection.silence_duration_ms",
        "session.audio.input.turn_detection.prefix_padding_ms",
    ]
    shown = clamped.as_json(None)["audio"]["input"]["turn_detection"]
    assert shown["silence_duration_ms"] == 100, "session.updated shows the value in force"


def test_openai_voice_names_map_onto_orpheus_voices_and_others_pass_through() -> None:
    assert (
        EdgeSessionConfig().updated({"audio": {"output": {"voice": "marin"}}}).gateway_config()["voice"]
        == "tara"
    )
    assert (
        EdgeSessionConfig().updated({"audio": {"output": {"voice": "cedar"}}}).gateway_config()["voice"]
        == "leo"
    )
    assert (
        EdgeSessionConfig().updated({"audio": {"output": {"voice": "zac"}}}).gateway_config()["voice"]
        == "zac"
    )
    # Unknown to the edge: the gateway decides (and the connection falls back with a warning).
    assert (
        EdgeSessionConfig().updated({"audio": {"output": {"voice": "nova2"}}}).gateway_config()["voice"]
        == "nova2"
    )


def test_every_openai_voice_maps_onto_a_voice_orpheus_has() -> None:
    from voxmesh.realtime.voices import OPENAI_VOICES
    from voxmesh.services.orpheus.voices import VOICES

    assert set(OPENAI_VOICES) == {
        "alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"
    }  # fmt: skip
    assert set(OPENAI_VOICES.values()) <= set(VOICES)


def test_function_tools_map_onto_the_gateway_config_and_wait_for_response_create() -> None:
    tool = {"type": "function", "name": "weather", "parameters": {"type": "object"}}
    config = EdgeSessionConfig().updated(
        {"tools": [tool], "tool_choice": {"type": "function", "name": "weather"}}
    )
    gateway = config.gateway_config()
    assert gateway["tools"] == ({**tool, "description": ""},) and gateway["tool_choice"] == "weather"
    assert gateway["tools_wait_for_reply"] is True  # outputs wait for the client's response.create
    body = config.as_json(None)
    assert body["tools"][0]["name"] == "weather"
    assert body["tool_choice"] == {"type": "function", "name": "weather"}
