"""The GPU memory split per card size: it fits the card, and the KV cache holds the promised sessions."""

from __future__ import annotations

import pytest

from voxmesh.card_profiles import (
    CARDS,
    GIB,
    MARGIN,
    ORPHEUS,
    PROFILES,
    VOXTRAL,
    VOXTRAL_REALTIME,
    Profile,
    fits,
    pick,
)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_fractions_and_contexts_fit_below_the_card(name: str) -> None:
    p = PROFILES[name]
    fractions = [f for _, f, _ in p.engines()]
    assert sum(fractions) < 1
    used_gib = sum(fractions) * p.card.usable_gib + p.outside_gib()
    assert used_gib <= p.card.usable_gib * (1 - MARGIN)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_kv_cache_holds_every_promised_session(name: str) -> None:
    p = PROFILES[name]
    assert p.sessions >= 1
    for model, fraction, tokens in p.engines():
        kv_bytes = p.kv_gib(model, fraction) * GIB
        assert kv_bytes >= p.sessions * tokens * model.kv_bytes_per_token, model.hub_id
        # vLLM refuses to start unless one request of max_model_len fits its KV cache.
        if model is VOXTRAL:
            assert kv_bytes >= p.voxtral_max_model_len * model.kv_bytes_per_token
            assert p.voxtral_max_model_len >= p.voxtral_tokens_per_session


def test_one_more_session_would_not_fit_or_the_cap_is_reached() -> None:
    for p in PROFILES.values():
        more = Profile(p.card, p.sessions + 1, p.voxtral_fraction, p.realtime_fraction, p.orpheus_fraction)
        assert not fits(more) or p.sessions == 32


def test_bigger_cards_promise_at_least_as_many_sessions() -> None:
    sessions = [PROFILES[c.name].sessions for c in CARDS]
    assert sessions == sorted(sessions)
    # The 24 GB card has no room for Voxtral Realtime; the others load it.
    assert [PROFILES[c.name].card.realtime for c in CARDS] == [False, True, True, True]
    assert PROFILES["24gb"].env()["VOXMESH_VOXTRAL_REALTIME_MODEL"] == ""
    assert PROFILES["48gb"].env()["VOXMESH_VOXTRAL_REALTIME_MODEL"] == VOXTRAL_REALTIME.hub_id


def test_session_limits_agree_across_services() -> None:
    for p in PROFILES.values():
        env = p.env()
        limits = {env[f"VOXMESH_{s}_MAX_SESSIONS"] for s in ("VOXTRAL", "ORPHEUS", "GATEWAY")}
        assert limits == {str(p.sessions)}


@pytest.mark.parametrize(
    ("mib", "expected"),
    [(23034, "24gb"), (24564, "24gb"), (46068, "48gb"), (49140, "48gb"), (81559, "80gb"), (81920, "80gb"),
     (143771, "141gb"), (183359, "141gb")],
)  # fmt: skip
def test_pick_by_card_memory(mib: int, expected: str) -> None:
    assert pick(mib * 1024 * 1024).name == expected


def test_pick_refuses_a_card_too_small() -> None:
    with pytest.raises(SystemExit, match=r"16\.0 GiB"):
        pick(16 * GIB)


def test_orpheus_is_the_smallest_model() -> None:
    assert ORPHEUS.weights_gib < VOXTRAL_REALTIME.weights_gib < VOXTRAL.weights_gib
