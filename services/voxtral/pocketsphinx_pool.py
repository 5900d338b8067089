"""A pool of pocketsphinx decoders: one costs ~0.6 s to load, so they are reused.

A decoder is not thread-safe: each utterance takes one for its lifetime and
gives it back. Only ever called from worker threads, never the event loop.
"""

from __future__ import annotations

import threading

from pocketsphinx import Decoder

from voxmesh.audio import PIPELINE_SAMPLE_RATE_HZ


class DecoderPool:
    def __init__(self) -> None:
        self._free: list[Decoder] = []
        self._lock = threading.Lock()

    def acquire(self) -> Decoder:
        with self._lock:
            if self._free:
                return self._free.pop()
        # fwdflat off: the second (flat-lexicon) pass runs at end_utt, after the
        # user stopped, and cost 110-150 ms a turn here for no better words
        # on our test speech; without it the end of turn costs 10-20 ms.
        return Decoder(samprate=PIPELINE_SAMPLE_RATE_HZ, loglevel="FATAL", fwdflat=False)

    def release(self, decoder: Decoder) -> None:
        with self._lock:
            self._free.append(decoder)
