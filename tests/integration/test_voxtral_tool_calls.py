"""The transformers engine's tool calls on a tiny random Voxtral checkpoint (real architecture, CPU).

The prompt with tools declared, and a past turn's call and result in the
history, is mistral-common's encoding token for token; a call the model
writes (its tokens forced by a logits processor, so the random weights
sample exactly them) is parsed by mistral-common into the ``ReplyToolCalls``
event, and the reply goes on from a prompt with the result where the v7
format puts it. See tests/integration/tool_call_prompts.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.tool_call_prompts import assert_tool_round_trip, converse_with_tools, tool_call_ids
from voxmesh.services.voxtral.random_checkpoint import save_voxtral


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    return save_voxtral(str(tmp_path_factory.mktemp("voxtral") / "tiny"))


def forcing(ids: list[int]) -> Any:
    """A logits processor that makes ``generate`` sample ``ids``, one per step, whatever the weights say."""
    import torch
    from transformers import LogitsProcessor

    class Forced(LogitsProcessor):
        def __init__(self) -> None:
            self.start: int | None = None

        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
            if self.start is None:
                self.start = input_ids.shape[1]
            step = input_ids.shape[1] - self.start
            forced = torch.full_like(scores, float("-inf"))
            forced[:, ids[min(step, len(ids) - 1)]] = 0.0
            return forced

    return Forced()


async def test_a_forced_tool_call_is_parsed_and_the_reply_goes_on_from_its_result(checkpoint: str) -> None:
    from transformers import LogitsProcessorList

    from voxmesh.services.voxtral.settings import VoxtralSettings
    from voxmesh.services.voxtral.transformers_engine import TransformersEngine

    settings = VoxtralSettings(
        engine="transformers",
        model=checkpoint,
        realtime_model="",
        device="cpu",
        dtype="float32",
        max_model_len=2048,
        max_reply_tokens=64,
        temperature=0.0,
    )
    engine = TransformersEngine(settings)
    await engine.start()
    assert engine.info.tool_calls == "model"
    original = engine._run_generate
    generations = 0

    def run_generate(prepared: Any, sampling: Any, streamer: Any, stop: Any, **extra: Any) -> None:
        nonlocal generations
        generations += 1
        if generations == 1:  # the reply's first generation writes the call; the one after its result, words
            extra["logits_processor"] = LogitsProcessorList([forcing(tool_call_ids(engine))])
        original(prepared, sampling, streamer, stop, **extra)

    engine._run_generate = run_generate  # type: ignore[method-assign]
    try:
        conversation = await converse_with_tools(engine, settings)
    finally:
        await engine.close()
    assert generations == 2
    assert_tool_round_trip(engine, conversation)
