"""Ask one DNS server for a name's addresses: the ``dns://server/name:port`` target form.

gRPC's dns resolver takes an authority, the DNS server to ask
(``dns://10.96.0.10:53/voxtral-replicas:50053``). The system resolver
(getaddrinfo) cannot be pointed at a server, so the stage pool sends the
A and AAAA queries itself (RFC 1035 over UDP; the server recurses).
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
import struct

#: Query types, and the address family each one's records are.
_A, _AAAA = 1, 28
_FAMILY = {_A: socket.AF_INET, _AAAA: socket.AF_INET6}
_HEADER = struct.Struct("!HHHHHH")
_RECORD = struct.Struct("!HHIH")  # type, class, TTL, data length


def encode_name(name: str) -> bytes:
    """``voxtral.svc`` → the wire form: length-prefixed labels, then 0."""
    labels = [label.encode("idna") for label in name.rstrip(".").split(".")]
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\0"


def skip_name(message: bytes, offset: int) -> int:
    """The offset just past the (possibly compressed) name at ``offset``."""
    while True:
        length = message[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:  # a pointer ends the name
            return offset + 2
        offset += 1 + length


async def lookup(server: tuple[str, int], name: str, timeout_s: float = 2.0) -> list[tuple[int, str]]:
    """Every (address family, IP) ``server`` has for ``name``; [] when it has none.

    Raises OSError (``TimeoutError`` included) when the server does not answer.
    """
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, server)
        pending: dict[int, int] = {}
        for qtype in (_A, _AAAA):
            query_id = secrets.randbits(16)
            pending[query_id] = qtype
            question = encode_name(name) + struct.pack("!HH", qtype, 1)
            await loop.sock_sendall(sock, _HEADER.pack(query_id, 0x0100, 1, 0, 0, 0) + question)
        found: list[tuple[int, str]] = []
        async with asyncio.timeout(timeout_s):
            while pending:
                reply = await loop.sock_recv(sock, 4096)
                if len(reply) < _HEADER.size:
                    continue
                reply_id, _flags, questions, answers, _, _ = _HEADER.unpack_from(reply)
                if reply_id not in pending:  # not ours (a late or forged reply)
                    continue
                qtype = pending.pop(reply_id)
                # NXDOMAIN and an empty answer both mean: no record of this type.
                found += _addresses(reply, questions, answers, qtype)
    return found


def _addresses(reply: bytes, questions: int, answers: int, qtype: int) -> list[tuple[int, str]]:
    offset = _HEADER.size
    for _ in range(questions):
        offset = skip_name(reply, offset) + 4
    found: list[tuple[int, str]] = []
    for _ in range(answers):
        offset = skip_name(reply, offset)
        rtype, _rclass, _ttl, length = _RECORD.unpack_from(reply, offset)
        offset += _RECORD.size
        if rtype == qtype:  # a CNAME on the way is skipped: the server followed it
            found.append((_FAMILY[qtype], str(ipaddress.ip_address(reply[offset : offset + length]))))
        offset += length
    return found
