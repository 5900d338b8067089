"""What happens when Voxtral Realtime fails: at start-up, and during one utterance.

Live transcripts ride on internals (vLLM's streaming input, transformers'
generator-fed ``generate``) that a new release may move. Two rules keep a
broken realtime path from failing ``stream`` turns:

- :func:`probe` runs one short silent utterance through the path before the
  process reports SERVING; the engine turns live transcripts off (one log
  line) if it fails, and transcribes every utterance at end of turn instead;
- :class:`FallbackTranscriber` keeps each utterance's audio while the live
  transcriber runs; if that fails mid-utterance or at its end, the same
  audio goes to the end-of-turn transcriber, and only that turn pays for it
  (partials stop; the final transcript still comes).

A refusal of the input itself (``InvalidArgument``: an utterance too long)
is not a failure of the path: it reaches the client as it is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import numpy as np

from voxmesh import logs
from voxmesh.audio import PIPELINE_SAMPLE_RATE_HZ
from voxmesh.errors import InvalidArgument
from voxmesh.services.voxtral.engine import LiveTranscriber

log = logging.getLogger(__name__)

#: The probe utterance: long enough to pass the realtime prompt's first chunk
#: (the delay, 480 ms by default) so at least one audio step runs.
PROBE_SECONDS = 1.0
#: The probe feeds audio in pieces, as a session does.
_PROBE_PIECE_SAMPLES = PIPELINE_SAMPLE_RATE_HZ // 10


class RealtimeProbeFailed(Exception):
    """The realtime path could not transcribe a short silent utterance."""


async def probe(transcriber: LiveTranscriber, timeout_s: float) -> None:
    """Transcribe :data:`PROBE_SECONDS` of silence; RealtimeProbeFailed if it fails or hangs."""
    silence = np.zeros(int(PROBE_SECONDS * PIPELINE_SAMPLE_RATE_HZ), np.float32)

    async def run() -> None:
        for start in range(0, len(silence), _PROBE_PIECE_SAMPLES):
            await transcriber.feed(silence[start : start + _PROBE_PIECE_SAMPLES])
        await transcriber.finish()

    try:
        await asyncio.wait_for(run(), timeout_s)
    except TimeoutError as exc:
        raise RealtimeProbeFailed(
            f"no transcript of {PROBE_SECONDS:g} s of silence within {timeout_s:g} s"
        ) from exc
    except Exception as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise RealtimeProbeFailed(
            f"{PROBE_SECONDS:g} s of silence failed: {type(exc).__name__}: {first_line}"
        ) from exc
    finally:
        transcriber.close()


class FallbackTranscriber(LiveTranscriber):
    """The live transcriber while it works; the end-of-turn one for this utterance once it fails."""

    def __init__(self, live: LiveTranscriber, fallback: Callable[[], LiveTranscriber]) -> None:
        self._live: LiveTranscriber | None = live
        self._make_fallback = fallback
        self._fallback: LiveTranscriber | None = None
        #: The utterance so far, for the fallback (bounded by the session's max_utterance_s).
        self._pieces: list[np.ndarray] = []

    async def feed(self, audio: np.ndarray) -> str | None:
        if self._live is None:
            assert self._fallback is not None
            return await self._fallback.feed(audio)
        self._pieces.append(audio)
        try:
            return await self._live.feed(audio)
        except InvalidArgument:
            raise
        except Exception as exc:
            await self._fall_back(exc)
            return None

    async def finish(self) -> str:
        if self._live is not None:
            try:
                text = await self._live.finish()
            except InvalidArgument:
                raise
            except Exception as exc:
                await self._fall_back(exc)
            else:
                self._pieces = []
                self.last_word_confidence = self._live.last_word_confidence
                return text
        assert self._fallback is not None
        text = await self._fallback.finish()
        self.last_word_confidence = self._fallback.last_word_confidence
        return text

    def close(self) -> None:
        self._pieces = []
        if self._live is not None:
            self._live.close()
        if self._fallback is not None:
            self._fallback.close()

    async def _fall_back(self, exc: Exception) -> None:
        assert self._live is not None
        self._live.close()
        self._live = None
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        log.warning(
            "live transcript failed (%s: %s); this utterance is transcribed at end of turn",
            type(exc).__name__,
            first_line,
            extra=logs.fields(transcriber="finish"),
        )
        self._fallback = self._make_fallback()
        pieces, self._pieces = self._pieces, []
        if pieces:
            await self._fallback.feed(np.concatenate(pieces))
