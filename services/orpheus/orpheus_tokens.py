"""The Orpheus 3B 0.1 token protocol: prompt ids in, SNAC frames out.

Orpheus is a Llama-3.2-3B whose vocabulary was extended past Llama's 128 256
ids with 10 control tokens and 7 × 4096 audio tokens. The prompt and the
audio layout below are what canopylabs' fine-tune was trained on:

- prompt: ``[START_OF_HUMAN] + tokenize("<voice>: <text>") (with BOS 128000)
  + [END_OF_TEXT, END_OF_HUMAN, START_OF_AI, START_OF_SPEECH]``; the model
  answers with audio tokens and stops at ``END_OF_SPEECH``;
- audio: frames of 7 tokens; slot ``k`` (0..6) of a frame carries
  ``AUDIO_TOKEN_BASE + code + k * 4096`` with ``code`` in 0..4095;
- a frame's codes feed SNAC's three codebooks as ``c0=[f0]``,
  ``c1=[f1, f4]``, ``c2=[f2, f3, f5, f6]`` (12, 23, 47 Hz).

The model sometimes emits a token out of place (a text or control id, an
audio id of the wrong slot): :class:`FrameParser` never decodes those as
audio. Because every slot has its own id range (slot ``k`` is
``AUDIO_TOKEN_BASE + k * 4096 ...``), a stray id says it does not belong
where it stands, so the parser skips it and keeps the frame, as canopylabs'
own decoder does (``turn_token_into_id`` drops an id that is not audio or
does not fit the next slot, without moving on). A frame is lost only when
its next slot never comes: the following slot-0 id starts a new frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from voxmesh.services.orpheus.phrases import emotive_tags_only

BOS = 128_000
START_OF_SPEECH = 128_257
END_OF_SPEECH = 128_258
START_OF_HUMAN = 128_259
END_OF_HUMAN = 128_260
START_OF_AI = 128_261
END_OF_AI = 128_262
END_OF_TEXT = 128_009
#: Every id that ends a phrase's speech. The fine-tune stops at END_OF_SPEECH,
#: but it also emits Llama's ``<|eot_id|>`` (END_OF_TEXT, the checkpoint's own
#: ``eos_token_id``) and END_OF_AI; canopylabs' own server stops on 128258 and
#: 128009. Both engines and the parser stop on this one set.
END_OF_SPEECH_IDS: frozenset[int] = frozenset({END_OF_SPEECH, END_OF_TEXT, END_OF_AI})
AUDIO_TOKEN_BASE = 128_266
CODEBOOK_SIZE = 4_096
CODES_PER_FRAME = 7
#: One past the last audio id (156 938); Orpheus' vocabulary is 156 940.
AUDIO_TOKEN_END = AUDIO_TOKEN_BASE + CODES_PER_FRAME * CODEBOOK_SIZE
#: SNAC 24 kHz: one frame (4 latent steps of 512 samples) is 2048 samples.
SAMPLES_PER_FRAME = 2_048
SNAC_SAMPLE_RATE_HZ = 24_000
#: Audio tokens per second of speech: 7 × 24000 / 2048 ≈ 82 (the real-time need).
TOKENS_PER_SECOND = CODES_PER_FRAME * SNAC_SAMPLE_RATE_HZ / SAMPLES_PER_FRAME

#: English at a conversational pace: ~150 words a minute of ~5.6 characters
#: (with their space and punctuation), 14 characters a second.
SPOKEN_CHARS_PER_SECOND = 14.0
#: How much slower than that a phrase may be spoken before the token cap cuts
#: it: pauses, emphasis, a ``<laugh>`` that lasts a second for 7 characters.
SLOW_SPEECH_MARGIN = 1.5

#: A frame's 7 codes, each 0..4095.
Frame = tuple[int, int, int, int, int, int, int]


class TextTokenizer(Protocol):
    """What the prompt needs from a Hugging Face tokenizer."""

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]: ...


def prompt_ids(tokenizer: TextTokenizer, voice: str, text: str) -> list[int]:
    """The prompt that makes Orpheus speak ``text`` with ``voice``.

    Only the eight emotive tags reach the model; any other ``<tag>`` is dropped.
    """
    ids = tokenizer.encode(f"{voice}: {emotive_tags_only(text)}", add_special_tokens=False)
    return [START_OF_HUMAN, BOS, *ids, END_OF_TEXT, END_OF_HUMAN, START_OF_AI, START_OF_SPEECH]


def phrase_token_budget(chars: int) -> int:
    """Audio tokens a phrase of ``chars`` characters may need, spoken slowly (whole frames).

    180 characters (the splitter's longest phrase) → 12.9 s at the usual pace,
    19.3 s with the margin → 1 589 tokens.
    """
    seconds = chars / SPOKEN_CHARS_PER_SECOND * SLOW_SPEECH_MARGIN
    return math.ceil(seconds * TOKENS_PER_SECOND / CODES_PER_FRAME) * CODES_PER_FRAME


#: Audio a phrase may spend besides its words, whatever its length: the
#: breath and silence Orpheus often speaks first, or one emotive tag ("<laugh>
#: Yes.") that lasts far longer than its few characters.
PHRASE_LEAD_SECONDS = 1.0


def phrase_token_cap(chars: int, ceiling: int) -> int:
    """``max_new_tokens`` for one phrase of ``chars`` characters: its budget plus a lead, at most ``ceiling``.

    A run that misses end-of-speech (canopylabs/Orpheus-TTS#289: runaway audio)
    then speaks noise for a few seconds after a short phrase, not for the
    whole global cap (19.5 s): 24 characters → 3.6 s, 3 → 1.3 s.
    """
    lead = math.ceil(PHRASE_LEAD_SECONDS * TOKENS_PER_SECOND / CODES_PER_FRAME) * CODES_PER_FRAME
    # Whole frames under the ceiling too: the ids of a cut last frame would only be dropped.
    return min(phrase_token_budget(chars) + lead, ceiling // CODES_PER_FRAME * CODES_PER_FRAME)


def audio_token(slot: int, code: int) -> int:
    """The token id that carries ``code`` in ``slot`` of a frame."""
    if not 0 <= slot < CODES_PER_FRAME or not 0 <= code < CODEBOOK_SIZE:
        raise ValueError(f"slot {slot} / code {code} out of range")
    return AUDIO_TOKEN_BASE + code + slot * CODEBOOK_SIZE


def frame_tokens(frame: Sequence[int]) -> list[int]:
    """The 7 token ids of one frame of codes (the inverse of parsing)."""
    return [audio_token(slot, code) for slot, code in enumerate(frame)]


def codebooks(frames: Sequence[Frame]) -> tuple[list[int], list[int], list[int]]:
    """SNAC's three code sequences for consecutive frames."""
    c0 = [f[0] for f in frames]
    c1 = [c for f in frames for c in (f[1], f[4])]
    c2 = [c for f in frames for c in (f[2], f[3], f[5], f[6])]
    return c0, c1, c2


@dataclass
class FrameParser:
    """Turns generated token ids into complete frames, one id at a time.

    Ids of the next slot extend the frame being read; any other id is skipped
    as stray, except a slot-0 id, which may start a new frame (the model gave
    up on the old one) or be a stray itself. Both readings are kept until the
    next audio id decides: the slot the old frame expects resumes it, slot 1
    continues the new one.
    """

    #: Tokens not decoded: stray ids, frames abandoned, an unfinished last frame.
    dropped_tokens: int = 0
    #: Stray ids skipped inside frames that were kept.
    skipped_ids: int = 0
    #: Frames started and never completed (abandoned for a new slot-0 frame or at the end).
    lost_frames: int = 0
    ended: bool = False
    _partial: list[int] = field(default_factory=list)
    #: The frame a slot-0 id interrupted, kept in case that id was a stray.
    _interrupted: list[int] | None = None

    def push(self, token_ids: Iterable[int]) -> list[Frame]:
        """Feed ids; return the frames they completed. Ids after an end of speech are ignored."""
        frames: list[Frame] = []
        for token in token_ids:
            if self.ended:
                break
            if token in END_OF_SPEECH_IDS:
                self.finish()
                break
            if not AUDIO_TOKEN_BASE <= token < AUDIO_TOKEN_END:
                self._skip()
                continue
            slot, code = divmod(token - AUDIO_TOKEN_BASE, CODEBOOK_SIZE)
            if slot == len(self._partial):
                self._partial.append(code)
                self._abandon_interrupted()
            elif self._interrupted is not None and slot == len(self._interrupted):
                # The slot-0 id that interrupted this frame was a stray.
                self._skip(len(self._partial))
                self._partial = [*self._interrupted, code]
                self._interrupted = None
            elif slot == 0 and len(self._partial) == 1:
                # Slot 0 twice: either reading leaves one frame; keep the newer.
                self._skip()
                self._partial = [code]
            elif slot == 0:
                self._abandon_interrupted()
                self._interrupted = self._partial
                self._partial = [code]
            else:
                self._skip()
                continue
            if len(self._partial) == CODES_PER_FRAME:
                frames.append(tuple(self._partial))  # type: ignore[arg-type]
                self._partial = []
        return frames

    def finish(self) -> None:
        """End of speech: an unfinished frame is dropped, never padded."""
        self._abandon_interrupted()
        self._interrupted, self._partial = self._partial, []
        self._abandon_interrupted()
        self.ended = True

    def _skip(self, n: int = 1) -> None:
        self.dropped_tokens += n
        self.skipped_ids += n

    def _abandon_interrupted(self) -> None:
        if self._interrupted:
            self.dropped_tokens += len(self._interrupted)
            self.lost_frames += 1
        self._interrupted = None
