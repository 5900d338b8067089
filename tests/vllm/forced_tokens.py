"""A vLLM (v1) logits processor that makes a request sample given ids, one per step.

Loaded by the engine core by name (``tests.vllm.forced_tokens:ForcedTokens``,
set in the engine args by the test); a request opts in with
``SamplingParams.extra_args["forced_token_ids"]``, so every other request of
the engine samples as the weights say.
"""

from __future__ import annotations

from typing import Any

import torch
from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

EXTRA_ARG = "forced_token_ids"


class ForcedTokens(AdapterLogitsProcessor):
    def is_argmax_invariant(self) -> bool:
        return False

    def new_req_logits_processor(self, params: Any) -> Any:
        ids = (params.extra_args or {}).get(EXTRA_ARG)
        if not ids:
            return None

        def force(output_ids: list[int], logits: torch.Tensor) -> torch.Tensor:
            forced = torch.full_like(logits, float("-inf"))
            forced[ids[min(len(output_ids), len(ids) - 1)]] = 0.0
            return forced

        return force
