"""Compose sets every stage's session limit, and the gateway's never promises
more sessions than the stages hold (each runs one replica under compose), in
the default (24 GB) profile, every card's env file and the CPU profile.

The gateway refuses a session no stage has room for (RESOURCE_EXHAUSTED
before SessionStarted) whatever its limit; a limit above the stages' only
hides where the bound is.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy import load_yaml
from tests.deploy.test_compose import COMPOSE, COMPOSE_CPU, _interpolated, _merge, _OverrideLoader
from voxmesh.card_profiles import PROFILES

STAGES = ("vad", "voxtral", "orpheus")


def limits(compose: dict[str, Any], env: dict[str, str]) -> dict[str, int]:
    """Each service's --max-sessions as compose passes it, with ``env`` set (the env file)."""
    out = {}
    for name in ("gateway", *STAGES):
        environment = compose["services"][name]["environment"]
        key = f"VOXMESH_{name.upper()}_MAX_SESSIONS"
        assert key in environment, f"compose leaves {name}'s session limit to the code's default"
        out[name] = int(_interpolated(environment[key], env))
    return out


def base() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE.read_text())
    return data


@pytest.mark.parametrize("profile", ["defaults", *sorted(PROFILES)])
def test_the_gateway_admits_no_more_than_every_stage_holds(profile: str) -> None:
    env = {} if profile == "defaults" else PROFILES[profile].env()
    found = limits(base(), env)
    assert found["gateway"] <= min(found[s] for s in STAGES), found


def test_the_cpu_profile_too() -> None:
    cpu = _merge(base(), yaml.load(COMPOSE_CPU.read_text(), Loader=_OverrideLoader))
    found = limits(cpu, {})
    assert found["gateway"] <= min(found[s] for s in STAGES), found
