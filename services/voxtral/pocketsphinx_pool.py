"""pocketsphinx decoding in worker processes, one utterance pinned to one worker.

pocketsphinx holds the GIL while it decodes. In threads of the service
process it stalled the event loop (replies of other sessions waited behind a
decode) and two decoding threads took 4.4x as long as one, so decoding runs
in separate processes: each worker is a single-process pool whose module
state keeps that worker's decoders (one costs ~0.6 s to load, so they are
reused), and an utterance always goes to the same worker.
Workers are spawned, not forked: the service process runs gRPC threads.
Workers end with the service, however it ends: a SIGKILLed service used to
leave them running (and multiprocessing's resource tracker with them, which
they keep open), 140 MB each.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

#: How often a worker checks that the service that started it is still there.
PARENT_CHECK_S = 0.5

#: Worker side: free decoders, and the decoder of each open utterance.
_free: list = []  # type: ignore[type-arg]
_open: dict[int, object] = {}


#: Decoder settings: the CPU profile must keep up with several speakers on one
#: decoding worker of a 2-core machine. Measured on a 2-core Intel Xeon, espeak
#: sentences fed in 20 ms chunks (CPU seconds per second of audio, share of
#: the reference words heard): pocketsphinx's defaults with fwdflat off 0.27 /
#: 0.31, these 0.16 / 0.28. So one worker holds ~6 speakers instead of ~3.
#: - fwdflat off: the second (flat-lexicon) pass runs at end_utt, after the
#:   user stopped, and cost 110-150 ms a turn for no better words;
#: - bestpath on: the lattice rescoring at end_utt (1-9 ms a sentence here)
#:   gives each word its posterior, the transcript's confidence in its last
#:   word (the gateway weighs it at the endpoint: gateway/endpointing.py);
#: - maxhmmpf 3000 (default 30000), maxwpf 5 (default all), topn 2 (default 4):
#:   CMU's documented speed-ups, pruning the search per frame.
DECODER_OPTIONS = {
    "fwdflat": False,
    "bestpath": True,
    "maxhmmpf": 3000,
    "maxwpf": 5,
    "topn": 2,
}


def make_decoder() -> object:
    """A pocketsphinx decoder with voxmesh's settings (the English model in the wheel)."""
    from pocketsphinx import Decoder

    from voxmesh.audio import PIPELINE_SAMPLE_RATE_HZ

    return Decoder(samprate=PIPELINE_SAMPLE_RATE_HZ, loglevel="FATAL", **DECODER_OPTIONS)


def _decoder() -> object:
    return _free.pop() if _free else make_decoder()


def _exit_with(parent_pid: int) -> None:
    """Worker initializer: exit as soon as the service process is gone.

    A parent-pid watch rather than PR_SET_PDEATHSIG: that signal follows the
    *thread* that spawned the worker, and portable code cannot promise which
    thread that is.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _warm() -> None:
    _free.append(_decoder())


def _feed(utterance: int, pcm: bytes) -> str:
    decoder = _open.get(utterance)
    if decoder is None:
        decoder = _open[utterance] = _decoder()
        decoder.start_utt()  # type: ignore[attr-defined]
    decoder.process_raw(pcm)  # type: ignore[attr-defined]
    hyp = decoder.hyp()  # type: ignore[attr-defined]
    return hyp.hypstr if hyp is not None else ""


def _finish(utterance: int) -> tuple[str, float | None]:
    """The final transcript, and the posterior of its last word (None: no word)."""
    decoder = _open.pop(utterance, None)
    if decoder is None:
        return "", None
    forward = decoder.hyp()  # type: ignore[attr-defined]
    decoder.end_utt()  # type: ignore[attr-defined]
    hyp = decoder.hyp()  # type: ignore[attr-defined]
    words = [
        segment
        for segment in decoder.seg() or ()  # type: ignore[attr-defined]
        # <s>, </s>, <sil> and fillers such as [NOISE] are not words of the transcript.
        if not segment.word.startswith(("<", "["))
    ]
    _free.append(decoder)
    if hyp is None or not hyp.hypstr:
        # The lattice's best path can come back empty where the forward pass heard
        # words (CMU's "four queen of clubs": 1 of 97 utterances measured): keep
        # those words, with no confidence to give.
        return (forward.hypstr if forward is not None else ""), None
    return hyp.hypstr, (float(words[-1].prob) if words else None)


def _release(utterance: int) -> None:
    decoder = _open.pop(utterance, None)
    if decoder is not None:
        try:
            decoder.end_utt()  # type: ignore[attr-defined]
        except RuntimeError:
            pass  # no utterance was open
        _free.append(decoder)


class DecoderWorkers:
    """``workers`` decoding processes; utterance ids are spread round-robin."""

    def __init__(self, workers: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._pools = [
            ProcessPoolExecutor(1, mp_context=context, initializer=_exit_with, initargs=(os.getpid(),))
            for _ in range(workers)
        ]
        self._ids = itertools.count(1)

    def new_utterance(self) -> int:
        return next(self._ids)

    def _pool(self, utterance: int) -> ProcessPoolExecutor:
        return self._pools[utterance % len(self._pools)]

    async def warm(self) -> None:
        """Start every worker and load one decoder in each, before SERVING."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(pool, _warm) for pool in self._pools))

    async def feed(self, utterance: int, pcm: bytes) -> str:
        return await asyncio.get_running_loop().run_in_executor(self._pool(utterance), _feed, utterance, pcm)

    async def finish(self, utterance: int) -> tuple[str, float | None]:
        """The final transcript and its last word's confidence (see :func:`_finish`)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool(utterance), _finish, utterance)

    def release(self, utterance: int) -> None:
        """Free the utterance's decoder; queued behind any feed still running for it."""
        try:
            self._pool(utterance).submit(_release, utterance)
        except RuntimeError:
            pass  # shut down already

    def close(self) -> None:
        for pool in self._pools:
            pool.shutdown(wait=False, cancel_futures=True)
