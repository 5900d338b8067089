import pytest

from voxmesh.errors import InvalidArgument
from voxmesh.gateway.session_options import session_options
from voxmesh.v1 import common_pb2, conversation_pb2


def test_defaults() -> None:
    opts = session_options(conversation_pb2.SessionConfig(input_sample_rate_hz=16_000), default_voice="tara")
    assert (opts.input_sample_rate_hz, opts.output_sample_rate_hz) == (16_000, 24_000)
    assert opts.voice == "tara" and opts.language == "en"


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (conversation_pb2.SessionConfig(), "config.input_sample_rate_hz"),
        (conversation_pb2.SessionConfig(input_sample_rate_hz=1), "config.input_sample_rate_hz"),
        (conversation_pb2.SessionConfig(input_sample_rate_hz=10_000_000), "config.input_sample_rate_hz"),
        (
            conversation_pb2.SessionConfig(input_sample_rate_hz=16_000, output_sample_rate_hz=7_999),
            "config.output_sample_rate_hz",
        ),
        (
            conversation_pb2.SessionConfig(input_sample_rate_hz=16_000, input_encoding=7),
            "config.input_encoding",
        ),  # type: ignore[arg-type]
        (conversation_pb2.SessionConfig(input_sample_rate_hz=16_000, turn_mode=42), "config.turn_mode"),  # type: ignore[arg-type]
        (
            conversation_pb2.SessionConfig(input_sample_rate_hz=16_000, vad_sensitivity=9),
            "config.vad_sensitivity",
        ),  # type: ignore[arg-type]
        (
            conversation_pb2.SessionConfig(input_sample_rate_hz=16_000, system_prompt="x" * 9000),
            "config.system_prompt",
        ),
    ],
)
def test_bad_fields_are_named(config: conversation_pb2.SessionConfig, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        session_options(config)
    assert err.value.field == field
    assert field in str(err.value)


def test_explicit_values_pass_through() -> None:
    opts = session_options(
        conversation_pb2.SessionConfig(
            input_sample_rate_hz=48_000,
            output_sample_rate_hz=16_000,
            voice="leo",
            turn_mode=common_pb2.TURN_MODE_TRANSCRIBE,
            vad_sensitivity=common_pb2.VAD_SENSITIVITY_HIGH,
        )
    )
    assert opts.input_sample_rate_hz == 48_000 and opts.output_sample_rate_hz == 16_000
    assert opts.voice == "leo"
    assert opts.turn_mode == common_pb2.TURN_MODE_TRANSCRIBE


@pytest.mark.parametrize("language", ["x" * 20_000, "en_US", "e"])
def test_a_language_that_is_no_tag_is_refused_at_the_gateway(language: str) -> None:
    # Which languages the mesh speaks is for the stages to say; a string that is
    # no BCP-47 tag (or would overflow the error trailer when echoed) stops here.
    with pytest.raises(InvalidArgument) as err:
        session_options(conversation_pb2.SessionConfig(input_sample_rate_hz=16_000, language=language))
    assert err.value.field == "config.language" and len(str(err.value)) < 120


def test_a_language_tag_passes_through_as_given() -> None:
    opts = session_options(conversation_pb2.SessionConfig(input_sample_rate_hz=16_000, language="pt-BR"))
    assert opts.language == "pt-BR"


def _turn(**fields: int) -> conversation_pb2.SessionConfig:
    return conversation_pb2.SessionConfig(
        input_sample_rate_hz=16_000,
        turn_detection=conversation_pb2.TurnDetection(**fields),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (_turn(silence_duration_ms=99), "config.turn_detection.silence_duration_ms"),
        (_turn(silence_duration_ms=5_001), "config.turn_detection.silence_duration_ms"),
        (_turn(prefix_padding_ms=2_001), "config.turn_detection.prefix_padding_ms"),
        (_turn(mode=7), "config.turn_detection.mode"),
        (_turn(eagerness=9), "config.turn_detection.eagerness"),
    ],
)
def test_turn_detection_out_of_bounds_is_refused_naming_the_field(
    config: conversation_pb2.SessionConfig, field: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        session_options(config)
    assert err.value.field == field


def test_turn_detection_maps_onto_the_vad_settings() -> None:
    opts = session_options(
        _turn(
            mode=common_pb2.END_OF_TURN_MODE_SEMANTIC,
            eagerness=common_pb2.EAGERNESS_HIGH,
            silence_duration_ms=300,
            prefix_padding_ms=200,
        )
    )
    assert opts.end_of_turn == common_pb2.END_OF_TURN_MODE_SEMANTIC
    assert opts.eagerness == common_pb2.EAGERNESS_HIGH
    assert (opts.hangover_ms, opts.pre_roll_ms) == (300, 200)
    # Unset: the vad's own settings (0 / UNSPECIFIED on its DetectConfig).
    plain = session_options(conversation_pb2.SessionConfig(input_sample_rate_hz=16_000))
    assert (plain.end_of_turn, plain.eagerness, plain.hangover_ms, plain.pre_roll_ms) == (0, 0, 0, 0)
