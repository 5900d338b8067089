"""Cut a stream of reply text into speakable phrases.

Text arrives as LLM deltas that may split words (or ``3.`` from ``14``)
anywhere, so every decision waits until the character *after* a candidate
cut point has arrived: the output depends only on the text, never on how it
was split into deltas.

Where a phrase ends, in order of preference:

1. a sentence end: ``.``, ``!``, ``?`` or ``…`` (plus closing quotes or
   brackets) followed by white space, or a line break. A ``.`` after an
   abbreviation is not an end: titles (``Dr.``, ``Mr.``) never end a
   sentence, and ``etc.``, ``U.S.``, ``p.m.``… end one only when the next word
   starts with a capital letter. Decimals (``3.14``) and dotted words
   (``e.g``) have no space after the dot, so they are never cut.
2. a clause end (``,`` ``;`` ``:`` ``—`` followed by white space) once the
   phrase is long enough to be worth a synthesis call: shorter for the first
   phrase of a turn, since that one decides the time to first audio.
3. the last space before ``max_chars`` when a phrase runs on with no
   punctuation, so one phrase never exceeds the engine's token budget.

A phrase is never cut inside a word or a ``<tag>``. Pieces with nothing to
say (only punctuation) are dropped; a piece made only of tags (``<sigh>``)
joins the phrase after it, or ends the turn on its own. Only the eight
emotive tags Orpheus was trained on stay in a phrase (lower-cased); any other
``<tag>`` is markup the LLM wrote, not speech, and is dropped rather than sent
to the model verbatim (it would read it out or derail).
"""

from __future__ import annotations

import re

from voxmesh.services.orpheus.voices import EMOTIVE_TAGS, TAG_PATTERN

#: Never end a sentence: they precede a name or a number.
_TITLES = frozenset("mr mrs ms dr prof st mt rev gen capt lt sgt gov sen vs cf eg ie approx".split())
#: End a sentence only when the next word starts with a capital letter.
_ABBREVIATIONS = frozenset(
    "etc inc ltd co corp jr sr no fig vol am pm us uk eu usa ca al dept est "
    "jan feb mar apr jun jul aug sep sept oct nov dec".split()
)
_SENTENCE_END = ".!?…"
_CLAUSE_END = ",;:—"
_CLOSERS = "\"')]}’”»"
_OPENERS = "(\"'“‘[«"
_WORD = re.compile(r"\w")
_SPEAKABLE = re.compile(rf"\w|{TAG_PATTERN.pattern}")


_EMOTIVE_TAGS = frozenset(EMOTIVE_TAGS)
#: Markup an LLM writes: ``<whisper>``, ``</em>``, ``<br/>``, SSML's
#: ``<break time="1s"/>``. Attributes need ``=`` so that "if a <b and c> d" stays text.
MARKUP_PATTERN = re.compile(
    r"</?[A-Za-z_][\w:-]*(?:[ \t]+[\w:-]+=(?:\"[^\"\n]*\"|'[^'\n]*'|[^\s<>/]+))*[ \t]*/?>"
)


def _emotive_or_nothing(tag: re.Match[str]) -> str:
    name = tag.group(0)[1:-1].lower()
    if name in _EMOTIVE_TAGS:
        return f"<{name}>"
    # "word<br/>word" keeps its two words apart; "now</em>." keeps "now.".
    text, start, end = tag.string, tag.start(), tag.end()
    return " " if 0 < start and end < len(text) and text[start - 1].isalnum() and text[end].isalnum() else ""


def emotive_tags_only(text: str) -> str:
    """``text`` with the eight emotive tags (lower-cased) and no other markup."""
    if "<" not in text:
        return text
    return re.sub(r"[ \t]{2,}", " ", MARKUP_PATTERN.sub(_emotive_or_nothing, text)).strip()


def _word_before(text: str, end: int) -> str:
    """The word that ends at ``end`` (exclusive), as written."""
    start = end
    while start > 0 and not text[start - 1].isspace() and text[start - 1] not in _OPENERS:
        start -= 1
    return text[start:end]


def _sentence_ends(buf: str, i: int, j: int) -> bool | None:
    """Whether the punctuation run ``buf[i:j]`` (followed by a space) ends a sentence.

    None while that depends on a next word that has not arrived yet.
    """
    if buf[i:j].rstrip(_CLOSERS) != ".":
        return True
    raw = _word_before(buf, i)
    word = raw.lower().replace(".", "")
    if word in _TITLES:
        return False
    # A single capital is an initial ("J. R. R. Tolkien"); "I" is a word.
    if len(raw) == 1 and raw.isupper() and raw != "I":
        return False
    if word in _ABBREVIATIONS or "." in raw:
        rest = buf[j:].lstrip()
        if not rest:
            return None
        return rest[0].isupper() or rest[0] in _OPENERS or rest[0] == "<"
    return True


class PhraseSplitter:
    """Feed text deltas, get phrases back as soon as they are certain."""

    def __init__(self, first_clause_chars: int = 24, clause_chars: int = 60, max_chars: int = 180) -> None:
        if min(first_clause_chars, clause_chars, max_chars) <= 0:
            raise ValueError("phrase lengths must be positive")
        self.first_clause_chars = min(first_clause_chars, max_chars)
        self.clause_chars = min(clause_chars, max_chars)
        self.max_chars = max_chars
        self._buf = ""
        self._carry = ""
        self._emitted = 0

    @property
    def pending(self) -> str:
        """Text received but not yet part of a phrase."""
        return f"{self._carry} {self._buf}".strip()

    def feed(self, text: str) -> list[str]:
        """Add a delta; return the phrases it completed (possibly none)."""
        self._buf += text
        return self._cut(final=False)

    def flush(self) -> list[str]:
        """End of text: return whatever is left as the last phrase(s)."""
        return self._cut(final=True)

    def _cut(self, final: bool) -> list[str]:
        phrases: list[str] = []
        while self._buf:
            end = self._next_cut(self._buf, final)
            if end is None:
                break
            piece, self._buf = emotive_tags_only(self._buf[:end].strip()), self._buf[end:]
            if not _SPEAKABLE.search(piece):
                continue
            if not _WORD.search(TAG_PATTERN.sub("", piece)):
                # Only tags ("<sigh>"): they go with the words that follow.
                self._carry = f"{self._carry} {piece}".strip()
                continue
            phrases.append(f"{self._carry} {piece}".strip())
            self._carry = ""
            self._emitted += 1
        if final and self._carry:
            phrases.append(self._carry)
            self._carry = ""
        return phrases

    def _next_cut(self, buf: str, final: bool) -> int | None:
        """Index just past the first certain phrase end in ``buf``, or None (wait for more)."""
        n = len(buf)
        start = n - len(buf.lstrip())
        clause_chars = self.clause_chars if self._emitted else self.first_clause_chars
        limit = start + self.max_chars
        last_space: int | None = None
        i = start
        while i < n:
            c = buf[i]
            if i >= limit:
                # A run-on phrase: cut at the last space before the limit, or
                # the first one after it when a single word is longer.
                if last_space is not None:
                    return last_space
                if c.isspace():
                    return i
            elif c.isspace():
                if c == "\n" and _SPEAKABLE.search(buf, start, i):
                    return i + 1
                last_space = i
            elif c in _SENTENCE_END:
                j = i + 1
                while j < n and (buf[j] in _SENTENCE_END or buf[j] in _CLOSERS):
                    j += 1
                if j == n:
                    return n if final else None
                if buf[j].isspace():
                    ends = _sentence_ends(buf, i, j)
                    if ends is None:
                        return n if final else None
                    if ends:
                        return j
                i = j
                continue
            elif c in _CLAUSE_END and i + 1 - start >= clause_chars:
                if i + 1 == n:
                    return n if final else None
                if buf[i + 1].isspace():
                    return i + 1
            i += 1
        return n if final else None
