"""Live transcripts with Voxtral Realtime (``VoxtralRealtimeForConditionalGeneration``).

One ``generate`` call per utterance, kept alive while its audio streams in:

- the prompt is mistral-common's *online streaming* transcription request
  (``TranscriptionRequest(streaming=ONLINE, target_streaming_delay_ms=…)``):
  BOS + ``[STREAMING_PAD]`` × (left-pad + delay tokens), with the left-pad
  silence that goes in front of the audio and the right-pad silence that
  flushes the delay at the end;
- :meth:`RealtimeTranscriber.feed` pushes audio into a thread-safe queue; a
  generator on the worker thread turns it into log-mel features one 80 ms
  token at a time (the first chunk covers the whole prompt), and
  ``generate(input_features=<generator>)`` reads it, sampling one text token
  per chunk, so the transcript runs ``realtime_delay_ms`` behind the audio;
- every sampled id goes to the transcript; ``feed`` returns the whole
  transcript so far whenever it changed;
- :meth:`RealtimeTranscriber.finish` ends the audio with the right-pad
  silence (delay + 1 + 10 tokens, mistral-common's ``n_right_pad_tokens``)
  and returns the final text; :meth:`RealtimeTranscriber.close` stops the
  worker within one step (cancel, barge-in, client gone).

The generator never runs dry: after the last real chunk it marks the audio as
ended and hands out silent filler that a stopping criterion never lets the
model read. transformers' own end-of-stream signal (a ``StopIteration`` from
the generator) is a flag on the shared model object, which would leak between
sessions transcribing at the same time.
"""

from __future__ import annotations

import abc
import asyncio
import contextvars
import logging
import queue
import threading
import time
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

import numpy as np

from voxmesh import logs
from voxmesh.audio import PIPELINE_SAMPLE_RATE_HZ
from voxmesh.errors import InvalidArgument
from voxmesh.services.voxtral.engine import LiveTranscriber

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: Voxtral Realtime's delay range (model card): 80 ms steps from 240 ms to 2.4 s.
DELAY_STEP_MS = 80
DELAY_MIN_MS = 240
DELAY_MAX_MS = 2400
#: Languages of Voxtral Mini 4B Realtime 2602 (its model card). The open model
#: takes no language in its streaming prompt: it hears which one is spoken.
VOXTRAL_REALTIME_LANGUAGES = frozenset(
    {"ar", "de", "en", "es", "fr", "hi", "it", "ja", "ko", "nl", "pt", "ru", "zh"}
)


def check_delay(delay_ms: int) -> int:
    """The delay if Voxtral Realtime supports it, else ``InvalidArgument`` naming the setting."""
    if not DELAY_MIN_MS <= delay_ms <= DELAY_MAX_MS or delay_ms % DELAY_STEP_MS:
        raise InvalidArgument(
            "realtime_delay_ms",
            f"{delay_ms} ms: Voxtral Realtime takes {DELAY_MIN_MS}..{DELAY_MAX_MS} ms in "
            f"{DELAY_STEP_MS} ms steps (480 ms matches offline quality)",
        )
    return delay_ms


def decode_transcript(tokenizer: Any, ids: list[int]) -> str:
    """The text of a realtime transcript's ids (mistral-common ``MistralTokenizer``), pads dropped."""
    from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy

    text = str(tokenizer.decode(ids, special_token_policy=SpecialTokenPolicy.IGNORE))
    # A byte-level token may end inside a UTF-8 character: hold it back.
    return text.rstrip("\ufffd").strip()


class BackgroundTranscriber(LiveTranscriber):
    """A live transcriber whose model runs in the background, started by the first audio.

    :meth:`feed` surfaces a failure of the background work, hands the audio on
    and returns the transcript whenever it changed; :meth:`finish` ends the
    audio and waits for the model to flush its delay. Subclasses supply the
    work (``_start``), the hand-over (``_push``, ``_end``), and keep
    ``self._text`` current as tokens come (from the event loop or a worker thread).
    """

    def __init__(self) -> None:
        self._text = ""
        self._returned = ""
        self._samples = 0
        self._work: asyncio.Future[None] | None = None

    @abc.abstractmethod
    def _stopped(self) -> bool:
        """Closed: further audio is ignored."""

    @abc.abstractmethod
    def _start(self) -> asyncio.Future[None]:
        """Start the model's work on this utterance."""

    @abc.abstractmethod
    def _push(self, audio: np.ndarray) -> None: ...

    @abc.abstractmethod
    def _end(self) -> None:
        """No more audio: the model flushes its delay and the work ends."""

    async def feed(self, audio: np.ndarray) -> str | None:
        if self._stopped():
            return None
        if self._work is None:
            self._work = self._start()
        elif self._work.done():
            self._work.result()  # the background work failed: raise it here
        self._samples += len(audio)
        self._push(np.asarray(audio, np.float32))
        return self._changed()

    async def finish(self) -> str:
        if self._work is None:
            if not self._samples:
                return ""
            self._work = self._start()
        self._end()
        await asyncio.shield(self._work)
        return self._text

    def _changed(self) -> str | None:
        text = self._text  # one read: a worker thread may replace it meanwhile
        if text == self._returned:
            return None
        self._returned = text
        return text


class RealtimeModel:
    """A loaded Voxtral Realtime and what every utterance's stream needs from it."""

    def __init__(
        self, model: Any, processor: Any, delay_ms: int, device: torch.device, dtype: torch.dtype
    ) -> None:
        from mistral_common.protocol.transcription.request import StreamingMode, TranscriptionRequest

        check_delay(delay_ms)
        self.model, self.processor = model, processor
        self.device, self.dtype = device, dtype
        self.tokenizer = processor.tokenizer.tokenizer  # mistral-common MistralTokenizer
        encoder = self.tokenizer.instruct_tokenizer.audio_encoder
        if encoder is None or not encoder.audio_config.is_streaming:
            raise ValueError("realtime_model: its tokenizer has no streaming audio section")
        audio = encoder.audio_config
        if audio.sampling_rate != PIPELINE_SAMPLE_RATE_HZ:
            raise ValueError(
                f"realtime_model: audio at {audio.sampling_rate} Hz, the pipeline runs at 16 kHz"
            )
        if audio.audio_length_per_tok != model.config.audio_length_per_tok:
            raise ValueError(
                f"realtime_model: the tokenizer has {audio.audio_length_per_tok} mel frames per token, "
                f"the model {model.config.audio_length_per_tok}"
            )
        self.delay_ms = delay_ms
        # The delay is applied where the model exposes it: the prompt's delay
        # pads, the right-pad length and the decoder's time conditioning.
        self.num_delay_tokens = audio.get_num_delay_tokens(delay_ms)
        prompt = self.tokenizer.encode_transcription(
            TranscriptionRequest(
                audio="", language=None, streaming=StreamingMode.ONLINE, target_streaming_delay_ms=delay_ms
            )
        )
        self.prompt_tokens: list[int] = list(prompt.tokens)
        left_pad, right_pad = prompt.audios
        self.left_pad = np.asarray(left_pad.audio_array, np.float32)
        self.right_pad_samples = len(right_pad.audio_array)
        fe = processor.feature_extractor
        self.feature_extractor = fe
        self.hop, self.window = fe.hop_length, fe.win_length
        self.frames_per_token = audio.audio_length_per_tok
        #: The first chunk: the prompt's delay tokens + 1, after the left pad.
        self.first_frames = (self.num_delay_tokens + 1) * self.frames_per_token
        self.first_samples = (self.first_frames - 1) * self.hop + self.window // 2
        #: Each later chunk: one token's frames plus the STFT window's overlap.
        self.chunk_samples = self.frames_per_token * self.hop + self.window
        self.samples_per_token = self.frames_per_token * self.hop
        self.pad_id = self.tokenizer.instruct_tokenizer.tokenizer.pad_id
        self.eos_id = self.tokenizer.instruct_tokenizer.tokenizer.eos_id

    @classmethod
    def load(cls, path: str, delay_ms: int, device: torch.device, dtype: torch.dtype) -> RealtimeModel:
        from transformers import AutoProcessor, VoxtralRealtimeForConditionalGeneration

        check_delay(delay_ms)
        processor = AutoProcessor.from_pretrained(path)
        model: Any = VoxtralRealtimeForConditionalGeneration.from_pretrained(path, dtype=dtype)
        return cls(model.to(device).eval(), processor, delay_ms, device, dtype)

    def features(self, audio: np.ndarray, *, first: bool) -> torch.Tensor:
        """Log-mel frames of one chunk (the first one centred, the rest not, as the processor does)."""
        mel = self.feature_extractor(
            audio, sampling_rate=PIPELINE_SAMPLE_RATE_HZ, center=first, return_tensors="pt"
        )["input_features"]
        return mel.to(self.device, self.dtype)

    def decode(self, ids: list[int]) -> str:
        return decode_transcript(self.tokenizer, ids)


class _AudioStream:
    """Audio from the event loop to ``generate``'s feature generator on the worker thread."""

    _END = object()

    def __init__(self, rt: RealtimeModel, stop: threading.Event) -> None:
        self.rt = rt
        self.stop = stop
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        #: Set once the last real chunk was handed out: the model must not read past it.
        self.ended = threading.Event()
        #: Set once end of speech was read: right-pad silence follows, EOS may end the stream.
        self.finished = threading.Event()
        self.chunks = 0

    def push(self, audio: np.ndarray) -> None:
        self.queue.put(audio)

    def end(self) -> None:
        self.queue.put(self._END)

    def wake(self) -> None:
        self.queue.put(None)

    def chunks_of_features(self) -> Any:
        """Yields the first chunk's features, then one token's worth at a time; never runs dry."""
        rt = self.rt
        buffer = rt.left_pad.copy()
        base = 0  # samples already dropped from the front of the buffer

        def fill(until: int) -> bool:
            """Take audio until the buffer reaches absolute sample ``until``; False if it never will."""
            nonlocal buffer
            while base + len(buffer) < until:
                if self.stop.is_set() or self.finished.is_set():
                    return False
                item = self.queue.get()
                if item is self._END:
                    self.finished.set()
                    # Flush the delay: mistral-common's right pad, the last token
                    # rounded up, and the STFT window of the last chunk.
                    spoken = base + len(buffer) - len(rt.left_pad)
                    round_up = -spoken % rt.samples_per_token
                    tail = round_up + rt.right_pad_samples + rt.window
                    buffer = np.concatenate([buffer, np.zeros(tail, np.float32)])
                elif item is not None:
                    buffer = np.concatenate([buffer, item])
            return not self.stop.is_set()

        first_end = len(rt.left_pad) + rt.first_samples
        if fill(first_end):
            self.chunks = 1
            yield rt.features(buffer[:first_end], first=True)
            frame = len(rt.left_pad) // rt.hop + rt.first_frames
            while True:
                start = frame * rt.hop - rt.window // 2
                end = start + rt.chunk_samples
                if not fill(end):
                    break
                self.chunks += 1
                yield rt.features(buffer[start - base : end - base], first=False)
                frame += rt.frames_per_token
                # Drop what no later chunk needs.
                keep_from = frame * rt.hop - rt.window // 2
                buffer, base = buffer[keep_from - base :], keep_from
        self.ended.set()
        # Filler: read at most by a step the stopping criterion discards.
        silence = rt.features(np.zeros(rt.chunk_samples, np.float32), first=False)
        while True:
            yield silence


class _Stop:
    """Stopping criterion: all chunks read, the transcriber closed, or EOS after end of speech."""

    def __init__(self, stream: _AudioStream, eos_id: int) -> None:
        self.stream = stream
        self.eos_id = eos_id

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        stream = self.stream
        done = stream.ended.is_set() or stream.stop.is_set()
        # EOS ends the stream only in the right pad, after the user stopped:
        # mid-utterance it would drop the rest of what is said.
        done = done or (stream.finished.is_set() and int(input_ids[0, -1]) == self.eos_id)
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class _Streamer:
    def __init__(self, on_ids: Any) -> None:
        self.on_ids = on_ids
        self.prompt_seen = False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.on_ids(value.reshape(-1).tolist())

    def end(self) -> None:
        pass


class RealtimeTranscriber(BackgroundTranscriber):
    """One utterance on a worker thread: audio in while the user speaks, the transcript so far out."""

    def __init__(self, rt: RealtimeModel, executor: Executor, language: str = "") -> None:
        super().__init__()
        self.rt = rt
        self.executor = executor
        self.language = language  # checked by the servicer; the streaming prompt takes none
        self.stop = threading.Event()
        self.stream = _AudioStream(rt, self.stop)
        self._lock = threading.Lock()
        self._ids: list[int] = []
        self._started = 0.0
        self._reason = "running"

    def close(self) -> None:
        if not self.stop.is_set():
            self.stop.set()
            self.stream.wake()

    # -------------------------------------------------------------- private

    def _stopped(self) -> bool:
        return self.stop.is_set()

    def _push(self, audio: np.ndarray) -> None:
        self.stream.push(audio)

    def _end(self) -> None:
        self.stream.end()

    def _on_ids(self, new: list[int]) -> None:
        with self._lock:
            self._ids.extend(new)
            self._text = self.rt.decode(self._ids)

    def _start(self) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        self._started = time.perf_counter()
        # The worker's log lines keep the session's and turn's ids.
        context = contextvars.copy_context()
        return loop.run_in_executor(self.executor, context.run, self._run)

    def _run(self) -> None:
        import torch
        from transformers import GenerationConfig, StoppingCriteriaList

        rt = self.rt
        reason = "failed"
        try:
            input_ids = torch.tensor([rt.prompt_tokens], device=rt.device)
            with torch.inference_mode():
                rt.model.generate(
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    input_features=self.stream.chunks_of_features(),
                    num_delay_tokens=rt.num_delay_tokens,
                    # Transcripts are greedy; the audio, not EOS, ends the stream.
                    generation_config=GenerationConfig(
                        do_sample=False, eos_token_id=None, pad_token_id=rt.pad_id
                    ),
                    stopping_criteria=StoppingCriteriaList([_Stop(self.stream, rt.eos_id)]),
                    streamer=_Streamer(self._on_ids),
                )
            reason = "cancelled" if self.stop.is_set() else "end_of_audio"
        finally:
            self._reason = reason
            log.info(
                "realtime transcription stopped",
                extra=logs.fields(
                    reason=reason,
                    chunks=self.stream.chunks,
                    tokens=len(self._ids),
                    audio_s=round(self._samples / PIPELINE_SAMPLE_RATE_HZ, 3),
                    delay_ms=rt.delay_ms,
                    seconds=round(time.perf_counter() - self._started, 3),
                ),
            )
