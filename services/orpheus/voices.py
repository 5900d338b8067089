"""Orpheus' voices and emotive tags (canopylabs/orpheus-3b-0.1-ft, English).

The fine-tuned model was trained with the voice name as a text prefix
(``"tara: Hello"``) and with a small set of inline tags that it renders as
sounds; every engine accepts the same voice names so a session can move
between engines without changing its config.
"""

from __future__ import annotations

import re

from voxmesh.errors import UnknownVoice

#: What every orpheus engine speaks. The Orpheus 3B 0.1 fine-tune is English
#: (its voices and training data); the espeak stand-in keeps that contract
#: although espeak-ng has voices for many more languages, so that a session
#: accepted on the CPU mesh is accepted on the GPU one, and vice versa.
LANGUAGES: frozenset[str] = frozenset({"en"})

#: The eight English voices of Orpheus 3B 0.1 (model card order: most natural first).
VOICES: tuple[str, ...] = ("tara", "leah", "jess", "leo", "dan", "mia", "zac", "zoe")

#: Inline tags Orpheus renders as sounds; passed to the model verbatim.
EMOTIVE_TAGS: tuple[str, ...] = (
    "laugh",
    "chuckle",
    "sigh",
    "cough",
    "sniffle",
    "groan",
    "yawn",
    "gasp",
)

#: Any ``<word>`` tag (known or not): the phrase splitter never cuts inside one.
TAG_PATTERN = re.compile(r"<[A-Za-z_]+>")


def resolve_voice(voice: str, default: str, field: str = "config.voice") -> str:
    """The voice to use for a session: empty → ``default``; unknown → UnknownVoice."""
    name = (voice or default).strip().lower()
    if name not in VOICES:
        raise UnknownVoice(field, f"unknown voice {voice!r}; choose one of {', '.join(VOICES)}")
    return name


def strip_tags(text: str) -> str:
    """``text`` without ``<tag>`` markup, for engines that would read it aloud."""
    return re.sub(r"\s{2,}", " ", TAG_PATTERN.sub(" ", text)).strip()
