"""The echo stand-in's final transcript and its confidence in the last word (services/voxtral/pocketsphinx_pool.py).

Real pocketsphinx decoding in this process (the pool's worker functions), on
CMU's own recordings (`make speech-corpus`) and Piper speech.
"""

from __future__ import annotations

import itertools

import numpy as np

from tests.piper_speech import piper_speak
from tests.recorded_speech import load
from voxmesh.audio import float_to_pcm16
from voxmesh.services.voxtral import pocketsphinx_pool

_ids = itertools.count(10_000)


def _final(audio: np.ndarray) -> tuple[str, float | None]:
    utterance = next(_ids)
    pcm = float_to_pcm16(audio)
    for at in range(0, len(pcm), 640):  # 20 ms chunks, as voxtral's session feeds them
        pocketsphinx_pool._feed(utterance, pcm[at : at + 640])
    return pocketsphinx_pool._finish(utterance)


def test_the_final_transcript_carries_its_last_words_posterior() -> None:
    text, confidence = _final(piper_speak("Can you set a timer for ten minutes?"))
    assert text.split()[-1] == "minutes"
    assert confidence is not None and 0.5 < confidence <= 1.0


def test_an_empty_best_path_keeps_the_forward_pass_words_without_a_confidence() -> None:
    # CMU's "four queen of clubs": the lattice's best path comes back empty.
    text, confidence = _final(load("cards/002.wav"))
    assert "queen" in text.split()
    assert confidence is None


def test_no_speech_gives_no_words_and_no_confidence() -> None:
    assert _final(np.zeros(16_000, np.float32)) == ("", None)
