"""The transformers engines on CUDA (bf16, static cache + compiled decode: the CUDA default).

Marked ``gpu``: they run where torch sees a CUDA device and are skipped
elsewhere (reported as skipped, never as passed). Same tiny random
checkpoints and the same real service processes as the CPU tests.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

torch = pytest.importorskip("torch")

from tests.integration.test_voxtral_echo import config, of_turn, respond, text_turn  # noqa: E402
from voxmesh.processes import ServiceProcess  # noqa: E402
from voxmesh.services.orpheus.orpheus_tokens import SAMPLES_PER_FRAME  # noqa: E402
from voxmesh.services.orpheus.random_checkpoint import save_orpheus, save_snac  # noqa: E402
from voxmesh.services.orpheus.stream_client import OrpheusStream  # noqa: E402
from voxmesh.services.voxtral.random_checkpoint import save_voxtral  # noqa: E402

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
    # --static-cache auto is on here: two turns, so the second runs the compiled decode step.
    events = await respond(svc.address, [config(), text_turn(1, "good morning"), text_turn(2, "and then?")])
    for turn_id in (1, 2):
        turn = of_turn(events, turn_id)
        assert [e.WhichOneof("event") for e in turn][-1] == "done"
        assert turn[-1].done.generated_tokens > 0


async def test_orpheus_speaks_on_cuda_with_static_cache(
    start_service: Callable[..., ServiceProcess], tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("orpheus")
    svc = start_service("orpheus", "--engine", "transformers", "--model", save_orpheus(str(root / "o")),
                        "--snac-model", save_snac(str(root / "s")), "--device", "cuda", "--static-cache", "on",
                        "--test-audio-frames-only", "--max-phrase-tokens", "28", timeout_s=300)  # fmt: skip
    async with OrpheusStream(svc.address) as stream:
        await stream.text(1, "Hello there.")
        await stream.end_of_text(1)
        events = await stream.until_done(1)
    audio = [e.audio for e in events if e.WhichOneof("event") == "audio"]
    # 28 tokens = 4 frames, every one decoded once.
    assert sum(len(a.pcm) for a in audio) == 4 * 2 * SAMPLES_PER_FRAME
