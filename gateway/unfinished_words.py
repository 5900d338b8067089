"""Hold an endpoint whose words cannot end a sentence: "I'd like to book a… table".

vad judges a pause by its silence and, with Smart Turn, by how the speech
sounds. Neither knows the words, and a speaker who stops after "book a" or
"what should I cook for dinner with" can sound finished (measured on Piper
speech: Smart Turn calls several such cuts complete with P > 0.9). The words
tell at once. So when vad's endpoint comes and the transcript voxtral has sent
so far ends with a word that leaves the sentence open (an article, a
preposition, a conjunction, a possessive, "to", a hesitation), the session
*holds* the endpoint: it keeps listening until the pause reaches
``--hold-unfinished-ms``, counted from the last voiced sample. Speech in that
time continues the same turn (a tentative reply is dropped unseen, as when the
user speaks on in a pause); silence until then releases the endpoint as it
was, so a turn that really ended on such a word costs its user the hold and
nothing else.

Only what the stages have sent by the endpoint is judged: ``stream`` mode's
live transcript, or a tentative reply's final one. Only English is judged;
other languages' endpoints are never held (their lists are not written yet).

A misheard last word does not decide alone: when the transcriber's confidence
in it is below :data:`DOUBTFUL_WORD` and the end-of-turn model is sure the turn
sounds finished (P >= :data:`SURE_SOUND`), the words are not trusted and vad's
endpoint stands. The threshold is low on purpose: pocketsphinx gives short
function words low posteriors whether it heard them right or not (Piper's
"I'd like to book a" ends on "a" at 0.14, and Smart Turn calls it finished at
0.94), so a higher one would give back the splits the hold exists to prevent
(BENCHMARKS.md, "Fast by default").
"""

from __future__ import annotations

import re

from voxmesh.language import language_code
from voxmesh.metrics import HELD_ENDPOINTS

#: Words after which an English sentence is almost never over. Left out on
#: purpose, though they often start a phrase: particles that end phrasal verbs
#: and stranded questions ("turn it on", "log me in", "where are you from" is
#: kept, being rarer than "from the…"), and words that often stand last ("that",
#: "this", "some", "then", "so", "though", "can", "her"). A wrong hold costs a
#: complete turn the hold; a missing one splits a turn, so the list errs short.
UNFINISHED_ENDINGS = frozenset(
    # articles and possessives
    "a an the my your our their its his every".split()
    # prepositions that rarely end a request
    + "of to for with about from at into onto by between during until without through via per than".split()
    # conjunctions
    + "and or but because if nor unless whether while although".split()
    # subjects and contractions that need a verb after them
    + "i i'm i'd i'll i've we're we'd we'll you're you'd they're".split()
    # question words that open a question ("what… time is it")
    + "what which whose".split()
    # hesitations, as transcribers write them
    + "um umm uh uhm uhh er erm hmm".split()
)

#: A last word the transcriber is less sure of than this (0-1) may be misheard...
DOUBTFUL_WORD = 0.1
#: ... and does not hold an endpoint whose speech the end-of-turn model calls finished this surely.
SURE_SOUND = 0.9

#: A transcript that ends on one of these was cut mid-sentence by its writer.
_OPEN_PUNCTUATION = (",", "…", "...", "-", "–", "—", ":", ";")
_CLOSED_PUNCTUATION = (".", "?", "!")
_WORD = re.compile(r"[\w']+")


def sounds_unfinished(transcript: str) -> bool:
    """The words so far stop where no sentence ends (see :data:`UNFINISHED_ENDINGS`)."""
    text = transcript.strip()
    if not text:
        return False  # no words: nothing to go on, vad's endpoint stands
    if text.endswith(_OPEN_PUNCTUATION):
        return True
    if text.endswith(_CLOSED_PUNCTUATION):
        return False
    words = _WORD.findall(text.lower().replace("’", "'"))
    return bool(words) and words[-1] in UNFINISHED_ENDINGS


def is_english(language: str) -> bool:
    """``language`` (a tag the session already checked) is English; an unset tag is not judged."""
    return bool(language) and language_code(language) == "en"


class EndpointHold:
    """The session's policy: whether to hold an endpoint, for how long, and its counts."""

    def __init__(self, hold_ms: int) -> None:
        #: The longest pause a held endpoint waits for, from the last voiced sample; 0: never hold.
        self.hold_ms = hold_ms

    def should_hold(
        self,
        transcript: str,
        language: str,
        last_word_confidence: float | None = None,
        turn_complete_probability: float | None = None,
    ) -> bool:
        """Hold vad's endpoint: the words end unfinished, and are not a doubtful word against a sure sound.

        ``last_word_confidence``: the transcriber's (None: not known);
        ``turn_complete_probability``: the end-of-turn model's for the pause (None: not judged).
        """
        if not (self.hold_ms > 0 and is_english(language) and sounds_unfinished(transcript)):
            return False
        if (
            last_word_confidence is not None
            and last_word_confidence < DOUBTFUL_WORD
            and turn_complete_probability is not None
            and turn_complete_probability >= SURE_SOUND
        ):
            HELD_ENDPOINTS.labels("overruled").inc()
            return False
        return True

    def held(self) -> None:
        HELD_ENDPOINTS.labels("held").inc()

    def continued(self) -> None:
        """The user spoke on inside the hold: one turn, not two."""
        HELD_ENDPOINTS.labels("continued").inc()

    def released(self) -> None:
        """The hold ran out in silence: the endpoint stands, later."""
        HELD_ENDPOINTS.labels("released").inc()
