"""Smart Turn v3.2: the probability that a speaker has finished their turn.

Daily's Smart Turn (BSD-2-Clause; https://github.com/pipecat-ai/smart-turn) is
an 8.7 MB int8 ONNX classifier over Whisper-tiny log-mel features of the last
8 s of audio at 16 kHz. It listens to *how* the user speaks (intonation, a
trailing "and…"), so "What time is it?" sounds finished while "I'd like to…"
does not, whatever the length of the pause.

The model file is ``smart-turn-v3.2-cpu.onnx``: from a local path, or from the
hub repository ``pipecat-ai/smart-turn-v3`` (fetched once at start-up, never at
import). ``make`` extracts the same file from the ``pipecat-ai`` 1.14.0 wheel for
the tests (``mk/smart_turn.mk``), without installing pipecat.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import soxr

from voxmesh.errors import EngineNotInstalled
from voxmesh.model_source import LOAD_ERRORS, ModelNotLoadable, is_local_path
from voxmesh.services.vad.whisper_features import compute_whisper_log_mel_features

log = logging.getLogger(__name__)

MODEL_FILE = "smart-turn-v3.2-cpu.onnx"
HUB_REPO = "pipecat-ai/smart-turn-v3"
#: The model's input: 8 s at 16 kHz; shorter audio is zero-padded at the start.
MODEL_RATE_HZ = 16_000
WINDOW_SAMPLES = 8 * MODEL_RATE_HZ
#: The model's thread runs this much nicer than the process (Linux: per-thread nice).
MODEL_THREAD_NICENESS = 5


def _below_normal_priority() -> None:
    """The model's worker thread yields the CPU to the transcriber (voxtral's decoder) on a shared machine."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), MODEL_THREAD_NICENESS)
    except (
        AttributeError,
        OSError,
    ) as exc:  # not Linux, or not permitted: calls still run, at normal priority
        log.warning("end-of-turn model thread keeps normal priority: %s", exc)


def model_path(model: str) -> str:
    """The ONNX file for ``model``: a local file (or folder holding it), else a hub repo id."""
    if is_local_path(model):
        path = os.path.expanduser(model)
        if os.path.isdir(path):
            path = os.path.join(path, MODEL_FILE)
        if not os.path.isfile(path):
            raise ModelNotLoadable(f"--smart-turn-model: no {MODEL_FILE} at the local path {model}")
        return path
    try:
        from huggingface_hub import hf_hub_download

        return str(hf_hub_download(model, MODEL_FILE))
    except ImportError as exc:
        raise ModelNotLoadable(
            f"--smart-turn-model {model}: huggingface_hub is not installed; give a local path"
        ) from exc
    except LOAD_ERRORS as exc:
        raise ModelNotLoadable(f"--smart-turn-model: {MODEL_FILE} not loadable from {model}: {exc}") from exc


class SmartTurnModel:
    """One ONNX session, shared by every stream of the process.

    Calls run one at a time on one worker thread below normal priority
    (:meth:`judge`): they come only at pauses, and on the 2-core CPU profile two
    at once would take both cores from the transcriber; a queued call waits
    ~60 ms per call ahead of it instead (BENCHMARKS.md, 4 sessions).
    """

    def __init__(self, path: str) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise EngineNotInstalled(
                "--end-of-turn smart-turn needs onnxruntime: pip install onnxruntime"
            ) from exc

        options = ort.SessionOptions()
        # One thread: measured ~60 ms a call on a 2-core EPYC; two threads were
        # slower, and the other core serves the rest of the mesh.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = path
        self._session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
        self._worker = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="end-of-turn", initializer=_below_normal_priority
        )

    @classmethod
    def load(cls, model: str) -> SmartTurnModel:
        return cls(model_path(model))

    def probability(self, audio: np.ndarray, sample_rate_hz: int) -> float:
        """P(turn complete) for ``audio`` (float32 in [-1, 1]) that ends at the pause being judged."""
        if sample_rate_hz != MODEL_RATE_HZ:
            audio = soxr.resample(audio, sample_rate_hz, MODEL_RATE_HZ)
        audio = np.asarray(audio[-WINDOW_SAMPLES:], dtype=np.float32)
        # Padding goes at the start, as the model was trained (pipecat's analyzer does the same).
        audio = np.pad(audio, (WINDOW_SAMPLES - audio.size, 0))
        features = compute_whisper_log_mel_features(audio, do_normalize=True)[np.newaxis]
        (output,) = self._session.run(None, {"input_features": features})[:1]
        return float(np.asarray(output).reshape(-1)[0])

    def timed_probability(self, audio: np.ndarray, sample_rate_hz: int) -> tuple[float, float]:
        """(probability, seconds the call took): the latency goes to a histogram."""
        began = time.perf_counter()
        probability = self.probability(audio, sample_rate_hz)
        return probability, time.perf_counter() - began

    async def judge(self, audio: np.ndarray, sample_rate_hz: int) -> tuple[float, float]:
        """:meth:`timed_probability` on the model's own thread, off the event loop, one call at a time."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, self.timed_probability, audio, sample_rate_hz)
