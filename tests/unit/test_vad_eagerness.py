"""semantic_vad eagerness → the end-of-turn model's pause lengths and threshold."""

from voxmesh.services.vad.eagerness import doubtful_for, policy_for
from voxmesh.services.vad.end_of_turn import EndOfTurnPolicy
from voxmesh.v1 import common_pb2

BASE = EndOfTurnPolicy(complete_hangover=3_200, incomplete_hangover=16_000, threshold=0.5)


def test_medium_and_unspecified_are_the_operators_settings() -> None:
    assert policy_for(BASE, common_pb2.EAGERNESS_MEDIUM) == BASE
    assert policy_for(BASE, common_pb2.EAGERNESS_UNSPECIFIED) == BASE


def test_low_waits_longer_for_a_surer_verdict_and_high_answers_sooner() -> None:
    low = policy_for(BASE, common_pb2.EAGERNESS_LOW)
    high = policy_for(BASE, common_pb2.EAGERNESS_HIGH)
    assert high.complete_hangover < BASE.complete_hangover < low.complete_hangover
    assert high.incomplete_hangover < BASE.incomplete_hangover < low.incomplete_hangover
    assert high.threshold < BASE.threshold < low.threshold


def test_scaled_policies_stay_valid_at_the_extremes() -> None:
    tight = EndOfTurnPolicy(complete_hangover=1_600, incomplete_hangover=1_600, threshold=0.9)
    high = policy_for(tight, common_pb2.EAGERNESS_HIGH)
    assert 0 < high.complete_hangover <= high.incomplete_hangover
    assert policy_for(tight, common_pb2.EAGERNESS_LOW).threshold == 0.95


def test_the_doubtful_band_scales_with_the_maximum_and_none_stays_none() -> None:
    assert doubtful_for(6_400, common_pb2.EAGERNESS_HIGH) < doubtful_for(6_400, common_pb2.EAGERNESS_MEDIUM)
    assert doubtful_for(6_400, common_pb2.EAGERNESS_MEDIUM) == 6_400
    assert doubtful_for(6_400, common_pb2.EAGERNESS_LOW) == 12_800
    assert doubtful_for(0, common_pb2.EAGERNESS_LOW) == 0
