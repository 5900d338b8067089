"""The vllm engine's tool calls on a tiny random Voxtral checkpoint in Mistral format (vLLM on CPU).

As tests/integration/test_voxtral_tool_calls.py for the transformers engine:
the prompts vLLM receives with tools declared (and a past call and result in
the history) are mistral-common's encoding token for token, and a call whose
tokens the model is made to sample (a v1 logits processor,
tests/vllm/forced_tokens.py) is parsed into ``ReplyToolCalls``, the reply
going on from a prompt with its result in ``[TOOL_RESULTS]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("vllm")

from tests.integration.tool_call_prompts import assert_tool_round_trip, converse_with_tools, tool_call_ids
from voxmesh.services.voxtral.random_checkpoint import save_voxtral_mistral

pytestmark = pytest.mark.vllm
VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}


@pytest.mark.timeout(900)  # vLLM starts in this process: ~1 min alone, minutes on a busy 2-core machine
async def test_a_forced_tool_call_is_parsed_and_the_reply_goes_on_from_its_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.vllm.forced_tokens import EXTRA_ARG
    from voxmesh.services.voxtral.settings import VoxtralSettings
    from voxmesh.services.voxtral.vllm_engine import VllmEngine

    for name, value in VLLM_ENV.items():
        monkeypatch.setenv(name, value)
    model = save_voxtral_mistral(str(tmp_path / "tiny"))
    settings = VoxtralSettings(
        engine="vllm", model=model, realtime_model="", dtype="float32", max_model_len=2048,
        max_reply_tokens=64, temperature=0.0,
    )  # fmt: skip
    engine = VllmEngine(settings)
    engine_args = engine.engine_args

    def with_forcing() -> Any:
        args = engine_args()
        args.logits_processors = ["tests.vllm.forced_tokens:ForcedTokens"]
        return args

    engine.engine_args = with_forcing  # type: ignore[method-assign]
    await engine.start()
    assert engine.info.tool_calls == "model"
    sampling_params = engine._sampling_params
    requests = 0

    def forcing_first(sampling: Any, max_tokens: int, **options: Any) -> Any:
        nonlocal requests
        requests += 1
        params = sampling_params(sampling, max_tokens, **options)
        if requests == 1:  # the reply's first request writes the call; the one after its result, words
            params.extra_args = {EXTRA_ARG: tool_call_ids(engine)}
        return params

    engine._sampling_params = forcing_first  # type: ignore[method-assign]
    try:
        conversation = await converse_with_tools(engine, settings)
    finally:
        await engine.close()
    assert requests == 2
    assert_tool_round_trip(engine, conversation)
