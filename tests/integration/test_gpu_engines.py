"""The transformers engines on CUDA (bf16, static cache + compiled decode: the CUDA default).

Marked ``gpu``: they run where torch sees a CUDA device and are skipped
elsewhere (reported as skipped, never as passed). Same tiny random
checkpoints and the same real service processes as the CPU tests. Sessions
run concurrently, as on a shared card: CUDA-graph trees replay only on the
thread that recorded them (tests/integration/test_compiled_generation.py
checks the thread layout on CPU; here CUDA itself does), and the compile
must be done before the service reports SERVING.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.integration.test_voxtral_echo import config, of_turn, respond, text_turn  # noqa: E402
from tests.integration.test_voxtral_transformers import audio_turn  # noqa: E402
from voxmesh.processes import ServiceProcess  # noqa: E402
from voxmesh.services.orpheus.orpheus_tokens import SAMPLES_PER_FRAME  # noqa: E402
from voxmesh.services.orpheus.random_checkpoint import save_orpheus, save_snac  # noqa: E402
from voxmesh.services.orpheus.stream_client import OrpheusStream  # noqa: E402
from voxmesh.services.voxtral.random_checkpoint import save_voxtral  # noqa: E402
from voxmesh.v1 import common_pb2  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


async def test_voxtral_replies_on_cuda(
    start_service: Callable[..., ServiceProcess], tmp_path_factory: pytest.TempPathFactory
) -> None:
    model = save_voxtral(str(tmp_path_factory.mktemp("voxtral") / "tiny"))
    svc = start_service("voxtral", "--engine", "transformers", "--model", model, "--device", "cuda",
                        "--dtype", "bfloat16", "--realtime-model", "", "--temperature", "1.0", timeout_s=300)  # fmt: skip
    # --static-cache auto is on here. Two sessions at once, two turns each; the
    # audio-mode turn runs its reply and its transcript at the same time (the
    # case that put a transcript on a second thread, where it failed).
    noise = (0.1 * np.random.default_rng(0).standard_normal(16_000)).astype(np.float32)
    sessions = [
        [config(mode=common_pb2.TURN_MODE_AUDIO), *audio_turn(1, noise), text_turn(2, "and then?")],
        [config(), text_turn(1, "good morning"), text_turn(2, "and then?")],
    ]
    results = await asyncio.gather(*(respond(svc.address, requests) for requests in sessions))
    for events in results:
        for turn_id in (1, 2):
            turn = of_turn(events, turn_id)
            assert [e.WhichOneof("event") for e in turn][-1] == "done"
            assert turn[-1].done.generated_tokens > 0
    # The audio turn's transcript came (on another thread it failed, was only logged, and the
    # history lost the user's turn).
    heard = of_turn(results[0], 1)
    assert any(e.WhichOneof("event") == "transcript" and e.transcript.is_final for e in heard)
    assert_warmed_up_before_serving(svc)


async def test_orpheus_speaks_on_cuda_with_static_cache(
    start_service: Callable[..., ServiceProcess], tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("orpheus")
    svc = start_service("orpheus", "--engine", "transformers", "--model", save_orpheus(str(root / "o")),
                        "--snac-model", save_snac(str(root / "s")), "--device", "cuda", "--static-cache", "on",
                        "--test-audio-frames-only", "--max-phrase-tokens", "28", timeout_s=300)  # fmt: skip

    async def one_stream() -> int:
        async with OrpheusStream(svc.address) as stream:
            await stream.text(1, "Hello there. How are you?")
            await stream.end_of_text(1)
            events = await stream.until_done(1)
        return sum(len(e.audio.pcm) for e in events if e.WhichOneof("event") == "audio")

    # Three sessions at once, two phrases each (the second started while the first plays).
    sizes = await asyncio.gather(*(one_stream() for _ in range(3)))
    # 28 tokens = 4 frames a phrase, every one decoded once.
    assert sizes == [2 * 4 * 2 * SAMPLES_PER_FRAME] * 3
    assert_warmed_up_before_serving(svc)


def assert_warmed_up_before_serving(svc: ServiceProcess) -> None:
    messages = []
    for line in Path(svc.log_path).read_text().splitlines():
        with contextlib.suppress(ValueError):  # torch and inductor write plain lines too
            messages.append(json.loads(line).get("msg"))
    assert messages.index("compiled generation warmed up") < messages.index("serving")
