"""voxmesh.language: the one reading of config.language for the gateway and the stages."""

import pytest

from voxmesh.errors import InvalidArgument
from voxmesh.language import MAX_LANGUAGE_CHARS, check_language, language_code


@pytest.mark.parametrize(
    ("tag", "code"),
    [("", "en"), ("en", "en"), ("EN-us", "en"), ("pt-BR", "pt"), ("zh-Hans-CN", "zh"), ("yue", "yue")],
)
def test_a_tag_reads_as_its_primary_language(tag: str, code: str) -> None:
    assert language_code(tag) == code


@pytest.mark.parametrize("tag", ["e", "en_US", "english!", "12", "de-", "-de", "en-toolongsubtag", "ü"])
def test_what_is_not_a_tag_is_refused_naming_the_field(tag: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        language_code(tag, "config.language")
    assert err.value.field == "config.language"


def test_an_overlong_tag_is_refused_without_echoing_it() -> None:
    # 20 000 characters once overflowed the gRPC error trailer when echoed back.
    with pytest.raises(InvalidArgument) as err:
        language_code("x" * 20_000)
    assert str(err.value).startswith("config.language:")
    assert "xxx" not in str(err.value) and len(str(err.value)) < 120
    language_code("a" * 2 + "-abcdefgh" * 3)  # 29 characters: a long but valid tag passes
    assert MAX_LANGUAGE_CHARS >= 35


def test_a_language_outside_the_set_names_who_refused_it() -> None:
    assert check_language("de-AT", {"en", "de"}, "voxtral") == "de"
    with pytest.raises(InvalidArgument) as err:
        check_language("ja", {"en", "de"}, "orpheus (engine espeak)")
    assert err.value.field == "config.language"
    assert str(err.value) == "config.language: orpheus (engine espeak) does not take 'ja'; it takes de, en"
