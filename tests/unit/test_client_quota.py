"""Per-client limits: open sessions, and a message budget shared by a client's sessions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from voxmesh.errors import EngineOverloaded
from voxmesh.gateway.client_quota import ClientQuota


async def flood(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


async def read_all(quota: ClientQuota, client: str, n: int) -> list[int]:
    with quota.hold(client):
        return [i async for i in quota.paced(client, flood(n))]


def test_sessions_past_the_limit_are_refused_per_client() -> None:
    quota = ClientQuota(limit=1)
    with quota.hold("token:a"):
        with pytest.raises(EngineOverloaded, match="max_sessions_per_client"):
            with quota.hold("token:a"):
                pass
        with quota.hold("token:b"):  # another client is not affected
            pass
    with quota.hold("token:a"):  # freed when the session ended
        pass


async def test_a_clients_sessions_share_one_message_budget() -> None:
    # 100 messages/s with a 100-message burst: 300 messages over two sessions of one
    # client cannot all be read in under 2 s, whatever the machine (a lower bound only).
    quota = ClientQuota(limit=0, messages_per_s=100)
    start = time.monotonic()
    first, second = await asyncio.gather(read_all(quota, "token:a", 150), read_all(quota, "token:a", 150))
    assert time.monotonic() - start >= 1.9
    assert first == list(range(150)) and second == list(range(150))  # paced, nothing lost or reordered


async def test_budgets_are_per_client_and_dropped_with_the_last_session() -> None:
    quota = ClientQuota(limit=0, messages_per_s=100)
    with quota.hold("token:a"):
        reader = quota.paced("token:a", flood(5))
        assert [i async for i in reader] == list(range(5))
        assert set(quota._budgets) == {"token:a"}
        with quota.hold("token:b"):
            assert [i async for i in quota.paced("token:b", flood(5))] == list(range(5))
            assert quota._budgets["token:a"] is not quota._budgets["token:b"]
    assert quota._budgets == {}


async def test_no_budget_reads_at_once() -> None:
    quota = ClientQuota(limit=0)
    assert await read_all(quota, "token:a", 10_000) == list(range(10_000))
    assert quota._budgets == {}
