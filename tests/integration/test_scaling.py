"""Many replicas per stage, as real processes on loopback ports: sessions are
placed by load, admission tells the truth, a conversation outlives its voxtral
replica, a draining orpheus replica finishes its reply and takes no more, and
a replica added to DNS takes new sessions within the resolve interval.

Each replica exports its own ``voxmesh_active_sessions`` gauge; the tests read
it from the replica's /metrics port, so placement is checked where it lands.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from voxmesh.client import AsyncSession, AudioOut, Event, Overloaded, StageError, TurnComplete
from voxmesh.loopback_dns import LoopbackDns
from voxmesh.processes import ServiceProcess, free_port


@dataclass
class Replica:
    process: ServiceProcess
    metrics_port: int

    def gauge(self, name: str = "voxmesh_active_sessions") -> float:
        """A gauge of this replica alone (its one ``service`` label)."""
        url = f"http://{self.process.host}:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
        found = re.search(rf"^{name}\{{service=\"\w+\"\}} (\S+)$", text, re.MULTILINE)
        assert found, f"{name} not exported"
        return float(found[1])


@dataclass
class ScaledMesh:
    vad: Replica
    voxtral: list[Replica]
    orpheus: list[Replica]
    gateway: ServiceProcess


@pytest.fixture
def start_scaled(start_service: Callable[..., ServiceProcess]) -> Callable[..., ScaledMesh]:
    """Two replicas each of voxtral and orpheus, one vad, one gateway given both lists."""

    def replica(name: str, *args: str) -> Replica:
        port = free_port()
        return Replica(start_service(name, "--metrics-port", str(port), *args), port)

    def start(
        voxtral_args: tuple[str, ...] = (),
        orpheus_args: tuple[str, ...] = (),
        gateway_args: tuple[str, ...] = (),
    ) -> ScaledMesh:
        vad = replica("vad")
        voxtral = [replica("voxtral", "--engine", "echo", *voxtral_args) for _ in range(2)]
        orpheus = [replica("orpheus", "--engine", "espeak", *orpheus_args) for _ in range(2)]

        def fixed_list(replicas: list[Replica]) -> str:
            return "ipv4:" + ",".join(r.process.address for r in replicas)

        gateway = start_service(
            "gateway",
            "--vad-addr", vad.process.address,
            "--voxtral-addr", fixed_list(voxtral),
            "--orpheus-addr", fixed_list(orpheus),
            *gateway_args,
        )  # fmt: skip
        return ScaledMesh(vad, voxtral, orpheus, gateway)

    return start


class Conversation:
    """One session with its events collected by a reader task."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.events: list[Event] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for event in self.session.events():
            self.events.append(event)

    async def turn(self, text: str, timeout_s: float = 60) -> list[Event]:
        """A typed turn; the events up to its TurnComplete or StageError."""
        start = len(self.events)
        await self.session.send_text(text)
        return await self.until(start, (TurnComplete, StageError), timeout_s)

    async def until(self, start: int, kinds: tuple[type, ...], timeout_s: float = 60) -> list[Event]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            if any(isinstance(e, kinds) for e in self.events[start:]):
                return self.events[start:]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {kinds} within {timeout_s} s: {self.events[start:]}")

    async def close(self) -> None:
        await self.session.end_input()
        await asyncio.wait_for(self._reader, 60)
        await self.session.close()


def echo_prompt_tokens(turns: list[str]) -> int:
    """The echo engine's prompt for the last of ``turns`` with every earlier exchange before it.

    It counts a message as its words + 1 and answers ``You said: TEXT.``.
    """
    exchanges = [(t, f"You said: {t}.") for t in turns[:-1]]
    texts = [text for pair in exchanges for text in pair] + [turns[-1]]
    return sum(len(text.split()) + 1 for text in texts)


async def test_twelve_sessions_spread_over_both_replicas_of_each_stage(
    start_scaled: Callable[..., ScaledMesh],
) -> None:
    mesh = start_scaled()
    sessions = await asyncio.gather(*(AsyncSession.connect(mesh.gateway.address) for _ in range(12)))
    try:
        for stage in (mesh.voxtral, mesh.orpheus):
            counts = [r.gauge() for r in stage]
            # Least-loaded placement: a burst of 12 lands 6 and 6, not 12 on one.
            assert counts == [6, 6], counts
        assert mesh.vad.gauge() == 12
        conversations = [Conversation(s) for s in sessions]
        done = await asyncio.gather(*(c.turn(f"hello number {i}") for i, c in enumerate(conversations)))
        assert all(any(isinstance(e, TurnComplete) for e in events) for events in done), done
        for conversation in conversations:
            await conversation.close()
    finally:
        await asyncio.gather(*(s.close() for s in sessions))


async def test_voxtral_replica_killed_next_turn_completes_on_the_other_with_the_history(
    start_scaled: Callable[..., ScaledMesh],
) -> None:
    mesh = start_scaled()
    conversation = Conversation(await AsyncSession.connect(mesh.gateway.address))
    said = ["the first thing is alpha", "the second thing is bravo"]
    for text in said:
        events = await conversation.turn(text)
        complete = [e for e in events if isinstance(e, TurnComplete)]
        assert complete, events
        # Let the reply play out: typing while it plays is a barge-in, and the
        # history would keep only the part heard so far.
        await asyncio.sleep(complete[0].reply_audio_ms / 1000 + 0.5)
    serving = [r for r in mesh.voxtral if r.gauge() == 1]
    assert len(serving) == 1
    victim = serving[0]
    other = next(r for r in mesh.voxtral if r is not victim)
    start = len(conversation.events)
    victim.process.kill()
    # Between turns: the client hears that voxtral's stream broke (no turn affected).
    noticed = await conversation.until(start, (StageError,))
    broken = [e for e in noticed if isinstance(e, StageError)]
    assert broken[0].stage == "voxtral" and broken[0].turn_id == 0 and broken[0].retryable, broken

    said.append("what did I say before")
    third = await conversation.turn(said[-1])
    complete = [e for e in third if isinstance(e, TurnComplete)]
    assert complete, third
    assert other.gauge() == 1
    # The other replica answered from the whole conversation: the two earlier
    # exchanges, then this turn (without the history it would count 5 tokens).
    assert complete[0].prompt_tokens == echo_prompt_tokens(said), complete[0]
    await conversation.close()


async def settle(condition: Callable[[], bool], tries: int = 50) -> None:
    """Wait (up to ``tries`` × 0.1 s) for ``condition``: each stage updates its gauge on its own schedule."""
    for _ in range(tries):
        if condition():
            return
        await asyncio.sleep(0.1)


async def fill_voxtral(start_scaled: Callable[..., ScaledMesh]) -> tuple[ScaledMesh, list[AsyncSession]]:
    """A mesh whose two voxtral replicas take one session each, and the two sessions that fill them."""
    mesh = start_scaled(voxtral_args=("--max-sessions", "1"))
    admitted = [await AsyncSession.connect(mesh.gateway.address) for _ in range(2)]
    return mesh, admitted


async def test_every_replica_full_refuses_before_session_started(
    start_scaled: Callable[..., ScaledMesh],
) -> None:
    mesh, admitted = await fill_voxtral(start_scaled)
    try:
        assert [r.gauge() for r in mesh.voxtral] == [1, 1]
        with pytest.raises(Overloaded, match="voxtral"):
            await AsyncSession.connect(mesh.gateway.address)
        # The refused session held nothing: its vad and orpheus streams were closed.
        await settle(lambda: mesh.vad.gauge() == 2 and sum(r.gauge() for r in mesh.orpheus) == 2)
        assert mesh.vad.gauge() == 2
        assert sum(r.gauge() for r in mesh.orpheus) == 2
        # Room again once a session ends.
        await admitted.pop().close()
        await settle(lambda: sum(r.gauge() for r in mesh.voxtral) == 1)
        admitted.append(await AsyncSession.connect(mesh.gateway.address))
    finally:
        await asyncio.gather(*(s.close() for s in admitted))


async def test_a_refused_session_leaves_no_stream_on_a_stage_that_answered_late(
    start_scaled: Callable[..., ScaledMesh],
) -> None:
    # Voxtral refuses at once while orpheus (stopped) has not answered the open yet: the
    # pending open must be given up with the session, not finish after it for nobody.
    mesh, admitted = await fill_voxtral(start_scaled)
    try:
        assert [r.gauge() for r in mesh.voxtral] == [1, 1]
        assert sum(r.gauge() for r in mesh.orpheus) == 2
        pids = [r.process.process.pid for r in mesh.orpheus if r.process.process is not None]
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(Overloaded, match="voxtral"):
                await AsyncSession.connect(mesh.gateway.address)
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        # Give a late open the time to land (it lands in ms once orpheus runs), then count:
        # a leaked stream would hold a third orpheus slot for as long as the gateway runs.
        await asyncio.sleep(1.0)
        await settle(lambda: sum(r.gauge() for r in mesh.orpheus) == 2)
        assert sum(r.gauge() for r in mesh.orpheus) == 2
        assert mesh.vad.gauge() == 2
    finally:
        await asyncio.gather(*(s.close() for s in admitted))


async def test_sigterm_on_an_orpheus_replica_finishes_its_reply_takes_no_new_session_and_lets_go(
    start_scaled: Callable[..., ScaledMesh],
) -> None:
    mesh = start_scaled(orpheus_args=("--grace-s", "120"))
    conversation = Conversation(await AsyncSession.connect(mesh.gateway.address))
    victim = next(r for r in mesh.orpheus if r.gauge() == 1)
    other = next(r for r in mesh.orpheus if r is not victim)
    story = " ".join(["and then the long road went on over the hills and far away"] * 6)
    start = len(conversation.events)
    await conversation.session.send_text(story)
    await conversation.until(start, (AudioOut,))
    assert victim.process.process is not None
    victim.process.process.send_signal(signal.SIGTERM)
    reply = await conversation.until(start, (TurnComplete, StageError))
    assert not [e for e in reply if isinstance(e, StageError)], reply
    assert any(isinstance(e, TurnComplete) for e in reply)
    # Draining: it says so at once, exports no capacity, and new sessions go elsewhere.
    assert victim.gauge("voxmesh_session_capacity") == 0
    newcomers = [await AsyncSession.connect(mesh.gateway.address) for _ in range(4)]
    try:
        assert other.gauge() == 4
        # Its reply spoken, the session holds no turn there: the replica lets
        # the stream go and exits long before its grace (120 s) ends.
        await asyncio.to_thread(victim.process.process.wait, 60)
        # Nothing dropped: the next reply is spoken by the other, with no Error.
        start = len(conversation.events)
        events = await conversation.turn("and one more thing")
        assert any(isinstance(e, TurnComplete) for e in events), events
        assert not [e for e in conversation.events[start:] if isinstance(e, StageError)]
        assert other.gauge() == 5
    finally:
        await asyncio.gather(*(s.close() for s in newcomers))
    await conversation.close()


async def test_a_replica_added_to_dns_takes_new_sessions_within_the_resolve_interval(
    start_service: Callable[..., ServiceProcess],
) -> None:
    # A headless Service played on loopback: voxtral replicas on 127.0.0.2, .3,
    # .4 with one port, and a DNS server the gateway is pointed at (gRPC's
    # dns://server/name:port form), whose records the test changes.
    resolve_interval_s = 0.5
    port = free_port()
    dns = await LoopbackDns("voxtral-replicas").start()
    replicas: list[Replica] = []

    async def add_replica(host: str) -> Replica:
        metrics_port = free_port()
        args = ["--host", host, "--engine", "echo", "--metrics-port", str(metrics_port)]
        replica = Replica(ServiceProcess("voxtral", port, args, host=host), metrics_port)
        replicas.append(replica)
        # In a thread: the DNS server answers on this loop meanwhile.
        await asyncio.to_thread(lambda: replica.process.start().wait_serving(120))
        dns.records.append(host)  # ready: the Service publishes its address
        return replica

    conversations: list[Conversation] = []
    try:
        for host in ("127.0.0.2", "127.0.0.3"):
            await add_replica(host)
        vad, orpheus = start_service("vad"), start_service("orpheus", "--engine", "espeak")
        # In a thread too: the gateway serves only once its voxtral replicas resolve
        # and pass its stage check, and the DNS server answers on this loop.
        gateway = await asyncio.to_thread(
            start_service,
            "gateway",
            "--vad-addr", vad.address,
            "--orpheus-addr", orpheus.address,
            "--voxtral-addr", f"dns://127.0.0.1:{dns.port}/voxtral-replicas:{port}",
            "--stage-resolve-interval-s", str(resolve_interval_s),
        )  # fmt: skip
        conversations = [Conversation(await AsyncSession.connect(gateway.address)) for _ in range(4)]
        assert [r.gauge() for r in replicas] == [2, 2]
        talking = asyncio.gather(*(c.turn(f"still talking {i}") for i, c in enumerate(conversations)))
        third = await add_replica("127.0.0.4")
        # Within the documented bound (one resolve interval; the TTL is 0 here),
        # the gateway knows it, and the emptiest replica takes the next session.
        await asyncio.sleep(2 * resolve_interval_s)
        conversations.append(Conversation(await AsyncSession.connect(gateway.address)))
        assert third.gauge() == 1
        assert [r.gauge() for r in replicas[:2]] == [2, 2]
        # The sessions that were talking meanwhile were not disturbed.
        for events in await talking:
            assert any(isinstance(e, TurnComplete) for e in events), events
        for conversation in conversations:
            await conversation.close()
    finally:
        dns.close()
        for replica in replicas:
            replica.process.stop()


async def test_a_draining_voxtral_replica_lets_an_idle_session_go_at_once_without_an_error(
    start_scaled: Callable[..., ScaledMesh],
) -> None:
    # A grace far longer than the test waits: the replica can only exit in
    # time by closing its idle streams itself.
    mesh = start_scaled(voxtral_args=("--grace-s", "120"))
    conversation = Conversation(await AsyncSession.connect(mesh.gateway.address))
    said = ["the password is swordfish"]
    complete = [e for e in await conversation.turn(said[0]) if isinstance(e, TurnComplete)]
    assert complete
    await asyncio.sleep(complete[0].reply_audio_ms / 1000 + 0.5)  # heard in full
    victim = next(r for r in mesh.voxtral if r.gauge() == 1)
    other = next(r for r in mesh.voxtral if r is not victim)
    start = len(conversation.events)
    assert victim.process.process is not None
    victim.process.process.send_signal(signal.SIGTERM)
    # The session held no turn there: the stream closes and the process exits.
    await asyncio.to_thread(victim.process.process.wait, 60)
    said.append("what is the password")
    events = await conversation.turn(said[-1])
    # No Error at all: not for the move, not for the next turn.
    errors = [e for e in conversation.events[start:] if isinstance(e, StageError)]
    assert not errors, errors
    complete = [e for e in events if isinstance(e, TurnComplete)]
    assert complete and other.gauge() == 1
    assert complete[0].prompt_tokens == echo_prompt_tokens(said), complete[0]
    await conversation.close()
