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
