"""Where a session's stream to a stage goes: one of the stage's replicas.

A stage address is any gRPC target. ``ipv4:10.0.0.1:50053,10.0.0.2:50053``
(or ``ipv6:``) is a fixed list of replicas; ``dns:///name:port`` is
re-resolved every ``resolve_interval_s`` (in Kubernetes: a headless Service,
one A record per ready pod), so replicas the autoscaler adds take sessions
within that bound; ``dns://server:53/name:port`` asks that DNS server instead
of the system resolver, as gRPC's own dns resolver does; anything else
(``host:port``) is one replica, as before.

The gateway keeps one channel per replica and picks the replica itself,
because gRPC's own balancers place *calls*, and a session is one long call:
round robin over a channel spreads sessions blindly, and pick_first (the
default) puts every session of a gateway on one replica. Each stage reports
its sessions in use and its limit in the first reply of every stream
(``EngineInfo``); the pool orders replicas by that load, counting the streams
this gateway is opening right now, so a burst of sessions spreads instead of
all reading the same stale figure. A replica that refused (full, draining,
down) is tried last for a short while.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from voxmesh import logs
from voxmesh.gateway import dns_lookup
from voxmesh.v1 import common_pb2

log = logging.getLogger(__name__)

#: A replica that refused a session (full) is tried last for this long.
FULL_AVOID_S = 1.0
#: A replica that was down or draining is tried last for this long.
DOWN_AVOID_S = 2.0
#: An empty pool re-resolves on demand at most this often.
_RESOLVE_ON_DEMAND_S = 1.0


@dataclass(eq=False)
class Replica:
    """One replica of a stage, seen from this gateway."""

    #: The channel's target: one address (``ipv4:10.0.0.1:50053``, ``host:port``).
    target: str
    channel: Any
    #: The stage's stream method (``Respond``, ...) bound to this replica's channel.
    method: Callable[..., Any]
    #: Streams this gateway holds on it, those being opened included.
    held: int = 0
    #: Streams the replica said it had open (every gateway's), minus ours closed since.
    reported: int = 0
    #: Its ``--max-sessions``; 0 until it reported.
    capacity: int = 0
    #: Until then (monotonic s) it is tried last: it refused, or was down.
    avoid_until: float = 0.0
    #: Gone from DNS: takes no new stream; its channel closes with its last one.
    retired: bool = False

    @property
    def in_use(self) -> int:
        return max(self.held, self.reported)

    @property
    def full(self) -> bool:
        return self.capacity > 0 and self.in_use >= self.capacity


class StagePool:
    """The replicas of one stage, and the order a new stream tries them in."""

    def __init__(
        self,
        stage: int,
        target: str,
        make_channel: Callable[[str], Any],
        method_of: Callable[[Any], Callable[..., Any]],
        resolve_interval_s: float = 5.0,
    ) -> None:
        self.stage = stage
        self.name = common_pb2.Stage.Name(stage).removeprefix("STAGE_").lower()  # type: ignore[arg-type]
        self.target = target
        self._make_channel = make_channel
        self._method_of = method_of
        self._resolve_interval_s = resolve_interval_s
        self._replicas: dict[str, Replica] = {}
        self._retired: list[Replica] = []
        self._dns = _dns_name(target)
        self._resolver: asyncio.Task[None] | None = None
        self._last_resolve = 0.0
        self._turn = itertools.count()
        #: Channels of replicas gone from DNS, being closed (awaited by close()).
        self._closing: set[asyncio.Task[None]] = set()
        #: Told when a replica refused a stream for want of anything but room or a
        #: good config (down, or refusing the gateway's token): the stage checks look again.
        self.on_trouble: Callable[[], None] | None = None
        if self._dns is None:
            self._set_targets(_fixed_targets(target))

    @property
    def replicas(self) -> list[Replica]:
        return list(self._replicas.values())

    async def start(self) -> None:
        """Resolve a ``dns:`` target now and then every ``resolve_interval_s``."""
        if self._dns is not None and self._resolver is None:
            await self._resolve()
            self._resolver = asyncio.create_task(self._keep_resolving(), name=f"{self.name}-resolver")

    async def close(self) -> None:
        if self._resolver is not None:
            self._resolver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resolver
        channels = [r.channel for r in (*self._replicas.values(), *self._retired)]
        await asyncio.gather(*(channel.close() for channel in channels), *self._closing)

    # ------------------------------------------------------------ placement

    async def candidates(self, prefer: Replica | None = None) -> list[Replica]:
        """Every replica, in the order a new stream should try them.

        ``prefer`` (the replica the session used last: its vLLM prefix cache
        holds the conversation) comes first while it has room; then the most
        room first (in_use / capacity), ties taken in turn; replicas that
        just refused or were down come last, as a last resort.
        """
        if not self._replicas and self._dns is not None:
            if time.monotonic() - self._last_resolve > _RESOLVE_ON_DEMAND_S:
                await self._resolve()
        now = time.monotonic()
        replicas = list(self._replicas.values())
        if not replicas:
            return []
        known = [r.capacity for r in replicas if r.capacity]
        # A replica that has not reported yet counts as big as the biggest that has.
        fallback = max(known) if known else 64
        start = next(self._turn) % len(replicas)

        def key(item: tuple[int, Replica]) -> tuple[bool, bool, float, int]:
            index, replica = item
            return (
                replica.avoid_until > now,
                replica.full,
                replica.in_use / (replica.capacity or fallback),
                (index - start) % len(replicas),
            )

        ordered = [r for _, r in sorted(enumerate(replicas), key=key)]
        if prefer is not None and prefer in ordered and not prefer.full and prefer.avoid_until <= now:
            ordered.remove(prefer)
            ordered.insert(0, prefer)
        return ordered

    def begin(self, replica: Replica) -> None:
        """A stream is being opened on ``replica``."""
        replica.held += 1

    def opened(self, replica: Replica, info: common_pb2.EngineInfo) -> None:
        """The replica admitted the stream and reported its load."""
        replica.avoid_until = 0.0
        if info.max_sessions:
            replica.reported, replica.capacity = info.sessions_in_use, info.max_sessions

    def refused(self, replica: Replica, code: str) -> None:
        """The stream could not be opened there (``code``: the gRPC status name)."""
        self._release(replica)
        if code == "RESOURCE_EXHAUSTED":
            replica.reported = max(replica.reported, replica.capacity)
            replica.avoid_until = time.monotonic() + FULL_AVOID_S
        elif code != "INVALID_ARGUMENT":  # a bad config is the client's fault, not the replica's
            replica.avoid_until = time.monotonic() + DOWN_AVOID_S
            if self.on_trouble is not None:
                self.on_trouble()

    def abandoned(self, replica: Replica) -> None:
        """The open was given up by the gateway (its session went away), not refused."""
        self._release(replica)

    def closed(self, replica: Replica) -> None:
        """A stream that was open on ``replica`` ended."""
        self._release(replica)
        replica.reported = max(0, replica.reported - 1)

    def _release(self, replica: Replica) -> None:
        replica.held = max(0, replica.held - 1)
        if replica.retired and replica.held == 0 and replica in self._retired:
            self._retired.remove(replica)
            self._close_channel(replica)

    # ------------------------------------------------------------ resolving

    async def _keep_resolving(self) -> None:
        while True:
            await asyncio.sleep(self._resolve_interval_s)
            await self._resolve()

    async def _resolve(self) -> None:
        assert self._dns is not None
        server, host, port = self._dns
        self._last_resolve = time.monotonic()
        try:
            if server is None:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
                found = [(family, str(sockaddr[0])) for family, *_, sockaddr in infos]
            else:
                found = await dns_lookup.lookup(server, host)
        except OSError as exc:
            fields = logs.fields(stage=self.name, target=self.target, error=str(exc))
            if not _no_such_name(exc):
                # DNS down or slow says nothing about the replicas: keep the ones known.
                log.warning("cannot resolve stage, keeping its replicas", extra=fields)
                return
            # A headless Service with no ready pod has no record: no replica now, not a crash.
            log.warning("stage has no replica in DNS", extra=fields)
            found = []
        targets = []
        for family, ip in found:
            targets.append(f"ipv6:[{ip}]:{port}" if family == socket.AF_INET6 else f"ipv4:{ip}:{port}")
        self._set_targets(sorted(set(targets)))

    def _set_targets(self, targets: list[str]) -> None:
        for target in targets:
            if target not in self._replicas:
                channel = self._make_channel(target)
                self._replicas[target] = Replica(target, channel, self._method_of(channel))
                log.info("stage replica added", extra=logs.fields(stage=self.name, replica=target))
        for target in [t for t in self._replicas if t not in targets]:
            replica = self._replicas.pop(target)
            replica.retired = True
            log.info("stage replica removed", extra=logs.fields(stage=self.name, replica=target))
            if replica.held:
                self._retired.append(replica)
            else:
                self._close_channel(replica)

    def _close_channel(self, replica: Replica) -> None:
        # In a task of its own: this runs inside a stream's callbacks.
        task = asyncio.get_running_loop().create_task(replica.channel.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


def _dns_name(target: str) -> tuple[tuple[str, int] | None, str, int] | None:
    """``dns:///name:port``, ``dns:name:port`` or ``dns://server[:53]/name:port`` → (server, name, port).

    The server is None for the system resolver.
    """
    if not target.startswith("dns:"):
        return None
    rest = target.removeprefix("dns:")
    server = None
    if rest.startswith("//"):
        authority, _, rest = rest[2:].partition("/")
        if authority:
            server_host, colon, server_port = authority.rpartition(":")
            if not colon or "]" in server_port:  # no port, or a bare IPv6 address
                server_host, server_port = authority, "53"
            if not server_port.isdigit():
                raise ValueError(f"{target!r}: the DNS server is host[:port]")
            server = (server_host.strip("[]"), int(server_port))
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{target!r}: a dns target is dns:///name:port")
    return server, host.strip("[]"), int(port)


def _no_such_name(exc: OSError) -> bool:
    """The resolver's answer was "no such name" (not a failure to get an answer)."""
    no_name = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
    return isinstance(exc, socket.gaierror) and exc.errno in no_name


def _fixed_targets(target: str) -> list[str]:
    """``ipv4:a:p,b:p`` → one target per address; anything else is one replica."""
    for scheme in ("ipv4:", "ipv6:"):
        if target.startswith(scheme):
            addresses = [a.strip() for a in target.removeprefix(scheme).split(",") if a.strip()]
            if not addresses:
                raise ValueError(f"{target!r}: no address after {scheme}")
            return [f"{scheme}{address}" for address in addresses]
    return [target]
