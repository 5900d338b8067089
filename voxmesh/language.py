"""The language of a session: a BCP-47 tag checked once, reduced to what models take.

The gateway and every stage read ``config.language`` with this one parser,
so a tag the gateway accepts is read the same way by voxtral and orpheus.
Models are conditioned on the language alone (mistral-common's transcription
request takes an ISO 639-1 code), so the region and script subtags are
accepted and dropped: ``pt-BR`` is Portuguese.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from voxmesh.errors import InvalidArgument

#: Longest tag accepted. RFC 5646 §4.4.1 asks implementations to take at
#: least 35 characters; a longer string is not a language, and echoing it
#: back would overflow the error trailer (20 000 characters did).
MAX_LANGUAGE_CHARS = 35
#: An empty config field means English, as the protos say.
DEFAULT_LANGUAGE = "en"

# Primary subtag (2-3 letters), then subtags of 1-8 letters or digits.
_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")


def language_code(tag: str, field: str = "config.language") -> str:
    """The lower-case primary subtag of ``tag`` (``""`` → ``"en"``); InvalidArgument naming ``field``."""
    if len(tag) > MAX_LANGUAGE_CHARS:
        raise InvalidArgument(field, f"{len(tag)} characters; a BCP-47 tag is at most {MAX_LANGUAGE_CHARS}")
    if not tag:
        return DEFAULT_LANGUAGE
    if not _TAG.fullmatch(tag):
        raise InvalidArgument(field, f"{tag!r} is not a BCP-47 language tag (such as en, de or pt-BR)")
    return tag.split("-", 1)[0].lower()


def check_language(tag: str, spoken: Iterable[str], who: str, field: str = "config.language") -> str:
    """The language code of ``tag`` if it is among ``spoken``, else InvalidArgument naming ``field``.

    ``who`` says what refused it (``"voxtral (engine echo, stream mode)"``), so
    the client learns which part of the mesh lacks the language.
    """
    code = language_code(tag, field)
    languages = sorted(spoken)
    if code not in languages:
        raise InvalidArgument(field, f"{who} does not take {tag!r}; it takes {', '.join(languages)}")
    return code
