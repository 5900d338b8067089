"""A DNS server on loopback whose records a test or bench changes while it runs.

It plays a Kubernetes headless Service (one A record per ready pod) for
replicas on 127.0.0.x, so the gateway's ``dns://127.0.0.1:PORT/name:port``
target goes through real DNS queries, and a replica "added by the autoscaler"
is a record appended here once it serves. No system file (/etc/hosts) is
touched. TTL 0: every query sees the current records.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
from dataclasses import dataclass, field

from voxmesh.gateway.dns_lookup import encode_name, skip_name

_A = 1


@dataclass
class LoopbackDns(asyncio.DatagramProtocol):
    """Answers A queries for ``name`` with ``records`` (IPv4), and nothing else."""

    name: str
    records: list[str] = field(default_factory=list)
    port: int = 0
    _transport: asyncio.DatagramTransport | None = None

    async def start(self) -> LoopbackDns:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        return self

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        query_id = data[:2]
        end = skip_name(data, 12)
        qname, (qtype,) = data[12:end], struct.unpack_from("!H", data, end)
        known = qname.lower() == encode_name(self.name).lower()
        answers = [ip for ip in self.records if known and qtype == _A]
        rcode = 0 if known else 3  # NXDOMAIN
        header = query_id + struct.pack("!HHHHH", 0x8180 | rcode, 1, len(answers), 0, 0)
        body = data[12 : end + 4]
        for ip in answers:  # a pointer to the question's name, type A, class IN, TTL 0
            body += struct.pack("!HHHIH", 0xC00C, _A, 1, 0, 4) + ipaddress.IPv4Address(ip).packed
        assert self._transport is not None
        self._transport.sendto(header + body, addr)
