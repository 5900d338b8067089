"""Per-phrase token caps and the repetition penalty's floor: what keeps one Orpheus run from running away."""

from __future__ import annotations

import pydantic
import pytest

from voxmesh.services.orpheus.orpheus_tokens import (
    CODES_PER_FRAME,
    PHRASE_LEAD_SECONDS,
    TOKENS_PER_SECOND,
    phrase_token_budget,
    phrase_token_cap,
)
from voxmesh.services.orpheus.settings import OrpheusSettings

GLOBAL_CAP = OrpheusSettings().max_phrase_tokens


@pytest.mark.parametrize("chars", [1, 3, 24, 60, 100, 180, 400])
def test_each_phrase_gets_its_budget_and_a_lead_in_whole_frames_under_the_global_cap(chars: int) -> None:
    cap = phrase_token_cap(chars, GLOBAL_CAP)
    ceiling = GLOBAL_CAP // CODES_PER_FRAME * CODES_PER_FRAME  # 1 596: the last whole frame
    assert cap % CODES_PER_FRAME == 0 and cap <= ceiling
    assert cap == ceiling or cap >= phrase_token_budget(chars) + PHRASE_LEAD_SECONDS * TOKENS_PER_SECOND


def test_a_short_phrase_can_run_away_for_seconds_not_for_the_whole_global_cap() -> None:
    # Before, every phrase had 1 600 tokens (19.5 s): the 24-character first
    # clause too. Now 3.6 s; "Hi." 1.3 s; the longest phrase keeps the global cap.
    assert phrase_token_cap(24, GLOBAL_CAP) == 301
    assert phrase_token_cap(3, GLOBAL_CAP) == 112
    assert phrase_token_cap(OrpheusSettings().max_phrase_chars, GLOBAL_CAP) == 1596
    assert phrase_token_cap(24, 70) == 70


def test_a_repetition_penalty_below_orpheus_stable_floor_starts_with_a_warning() -> None:
    assert OrpheusSettings().check() == []
    (warning,) = OrpheusSettings(repetition_penalty=1.0).check()
    assert "repetition_penalty=1.0" in warning and "1.1" in warning
    assert OrpheusSettings(repetition_penalty=1.3).check() == []


@pytest.mark.parametrize("value", [0.5, 0.99, 0.0])
def test_a_repetition_penalty_below_one_is_refused(value: float) -> None:
    # Below 1.0 it rewards repeating: never what a speech model wants.
    with pytest.raises(pydantic.ValidationError, match="repetition_penalty"):
        OrpheusSettings(repetition_penalty=value)
