"""gateway/placement.py: which replica a new stage stream tries first."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from voxmesh.gateway.placement import StagePool, _dns_name
from voxmesh.v1 import common_pb2


class _Channel:
    def __init__(self, target: str) -> None:
        self.target = target
        self.closed = False

    async def close(self) -> None:
        self.closed = True


def _pool(target: str) -> StagePool:
    return StagePool(common_pb2.STAGE_VOXTRAL, target, _Channel, lambda channel: channel)


def _info(in_use: int, limit: int) -> Any:
    return common_pb2.EngineInfo(engine="echo", sessions_in_use=in_use, max_sessions=limit)


def test_a_fixed_list_is_one_replica_per_address_and_host_port_is_one() -> None:
    pool = _pool("ipv4:127.0.0.2:50053,127.0.0.3:50053")
    assert [r.target for r in pool.replicas] == ["ipv4:127.0.0.2:50053", "ipv4:127.0.0.3:50053"]
    assert [r.target for r in _pool("voxtral:50053").replicas] == ["voxtral:50053"]
    with pytest.raises(ValueError, match="dns:///name:port"):
        _pool("dns:///voxtral")


def test_a_dns_target_may_name_the_dns_server_to_ask() -> None:
    assert _dns_name("dns:///voxtral:50053") == (None, "voxtral", 50053)
    assert _dns_name("dns:voxtral:50053") == (None, "voxtral", 50053)
    assert _dns_name("dns://10.96.0.10/voxtral:50053") == (("10.96.0.10", 53), "voxtral", 50053)
    assert _dns_name("dns://127.0.0.1:5353/voxtral:50053") == (("127.0.0.1", 5353), "voxtral", 50053)
    assert _dns_name("dns://[::1]:5353/voxtral:50053") == (("::1", 5353), "voxtral", 50053)
    assert _dns_name("voxtral:50053") is None


async def test_the_replica_with_the_most_room_goes_first() -> None:
    pool = _pool("ipv4:a:1,b:1")
    a, b = pool.replicas
    pool.begin(a)
    pool.opened(a, _info(30, 32))  # another gateway filled it
    pool.begin(b)
    pool.opened(b, _info(3, 32))
    for _ in range(4):
        assert (await pool.candidates())[0] is b


async def test_a_burst_alternates_before_any_replica_reports() -> None:
    pool = _pool("ipv4:a:1,b:1")
    picks = []
    for _ in range(6):
        first = (await pool.candidates())[0]
        pool.begin(first)  # opening: counted before the stage answers
        picks.append(first.target)
    assert sorted(picks.count(t) for t in set(picks)) == [3, 3]


async def test_the_previous_replica_is_preferred_while_it_has_room() -> None:
    pool = _pool("ipv4:a:1,b:1")
    a, b = pool.replicas
    pool.begin(a)
    pool.opened(a, _info(10, 32))
    pool.begin(b)
    pool.opened(b, _info(1, 32))
    assert (await pool.candidates(prefer=a))[0] is a
    pool.begin(a)
    pool.opened(a, _info(32, 32))
    assert (await pool.candidates(prefer=a))[0] is b


async def test_a_replica_that_refused_is_tried_last_and_a_closed_stream_frees_room() -> None:
    pool = _pool("ipv4:a:1,b:1")
    a, b = pool.replicas
    pool.begin(b)
    pool.refused(b, "UNAVAILABLE")  # down or draining
    assert await pool.candidates() == [a, b]
    pool.begin(a)
    pool.opened(a, _info(2, 2))
    pool.begin(b)
    pool.refused(b, "RESOURCE_EXHAUSTED")
    assert a.full and a.held == 1 and b.held == 0
    assert await pool.candidates() == [a, b]  # b refused just now: last, even though a is full
    pool.closed(a)
    assert not a.full and a.held == 0


async def test_replicas_gone_from_dns_close_when_their_last_stream_ends() -> None:
    pool = _pool("dns:///voxtral:50053")
    pool._set_targets(["ipv4:10.0.0.1:50053", "ipv4:10.0.0.2:50053"])
    old, other = pool.replicas
    pool.begin(old)
    pool.opened(old, _info(1, 32))
    pool._set_targets(["ipv4:10.0.0.2:50053", "ipv4:10.0.0.3:50053"])
    assert [r.target for r in pool.replicas] == ["ipv4:10.0.0.2:50053", "ipv4:10.0.0.3:50053"]
    assert old.retired and not old.channel.closed
    pool.closed(old)
    await pool.close()
    assert old.channel.closed and other.channel.closed


async def test_a_replica_added_to_dns_takes_the_next_session_within_the_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records = ["10.0.0.1"]

    async def getaddrinfo(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        assert host == "voxtral-replicas"
        if not records:
            raise socket.gaierror(socket.EAI_NONAME, "no such name")  # a headless Service with no ready pod
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in records]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    pool = StagePool(
        common_pb2.STAGE_VOXTRAL,
        "dns:///voxtral-replicas:50053",
        _Channel,
        lambda c: c,
        resolve_interval_s=0.05,
    )
    await pool.start()
    (first,) = pool.replicas
    pool.begin(first)
    pool.opened(first, _info(5, 32))
    records.append("10.0.0.2")
    await asyncio.sleep(0.2)  # a few resolve intervals
    assert (await pool.candidates())[0].target == "ipv4:10.0.0.2:50053"
    records.clear()
    await asyncio.sleep(0.2)
    assert pool.replicas == [] and await pool.candidates() == []
    await pool.close()


async def test_a_dns_failure_keeps_the_replicas_known(monkeypatch: pytest.MonkeyPatch) -> None:
    answers: list[Any] = [[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", 50053))]]

    async def getaddrinfo(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        if isinstance(answers[-1], OSError):
            raise answers[-1]
        return answers[-1]  # type: ignore[no-any-return]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    pool = _pool("dns:///voxtral-replicas:50053")
    await pool._resolve()
    assert [r.target for r in pool.replicas] == ["ipv4:10.0.0.1:50053"]
    for failure in (socket.gaierror(socket.EAI_AGAIN, "try again"), TimeoutError()):
        answers.append(failure)  # the DNS server is down or slow, not the replicas
        await pool._resolve()
        assert [r.target for r in pool.replicas] == ["ipv4:10.0.0.1:50053"]
    await pool.close()
