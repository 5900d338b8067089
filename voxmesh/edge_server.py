"""What every WebSocket edge does the same way around its own protocol.

The Realtime edge (``voxmesh serve realtime``) and the phone edge (``voxmesh
serve telephony``) are both clients of the gateway's Converse stream that serve
WebSockets. Beyond their protocols they share: the settings that reach the
gateway, TLS towards their own clients, serving until SIGTERM with a grace
period for the calls in flight, the start-up line with the /metrics port, and
the process around it (logs, uvloop, one clear line when the port is taken).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from voxmesh import logs
from voxmesh.edge_settings import EdgeSettings
from voxmesh.metrics_server import start_metrics


def gateway_tls(settings: EdgeSettings) -> dict[str, Any]:
    """The SDK's TLS keyword arguments for the gateway channel (none: plaintext)."""
    if not settings.gateway_tls:
        return {}
    ca = Path(settings.gateway_ca).read_bytes() if settings.gateway_ca else None
    return {"tls": True, "root_certificates": ca}


async def serve_until_stopped(
    settings: EdgeSettings,
    handler: Callable[[ServerConnection], Awaitable[None]],
    *,
    service: str,
    max_message_bytes: int,
    process_request: Callable[[ServerConnection, Request], Awaitable[Response | None] | Response | None],
    select_subprotocol: Callable[[ServerConnection, Sequence[Subprotocol]], Subprotocol | None] | None = None,
    log: logging.Logger,
    **log_fields: Any,
) -> None:
    """Serve ``handler`` until SIGTERM/SIGINT, then stop accepting and give open sockets ``grace_s``."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tls = None
    if settings.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(settings.tls_cert, settings.tls_key)
    async with serve(
        handler,
        settings.host,
        settings.port,
        process_request=process_request,
        select_subprotocol=select_subprotocol,
        max_size=max_message_bytes,
        ssl=tls,
        server_header=f"voxmesh-{service}",
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        metrics_port = start_metrics(settings)
        log.info(
            "serving",
            extra=logs.fields(
                service=service,
                port=port,
                **log_fields,
                gateway=settings.gateway,
                metrics_port=metrics_port,
                tls=tls is not None,
            ),
        )
        await stop.wait()
        log.info("stopping", extra=logs.fields(grace_s=settings.grace_s))
        server.close(close_connections=False)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(settings.grace_s):
                await server.wait_closed()


def run_edge(
    service: str, settings: EdgeSettings, serve_forever: Callable[[], Coroutine[Any, Any, None]]
) -> int:
    """``voxmesh serve SERVICE`` for an edge: logs, event loop, serve until SIGTERM; 2 when it cannot listen."""
    logs.configure(service, settings.log_level)
    logging.getLogger(f"voxmesh.{service}").info("settings", extra=logs.fields(**settings.masked()))
    if settings.uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            uvloop.install()
    try:
        asyncio.run(serve_forever())
    except OSError as exc:
        print(
            f"voxmesh serve {service}: cannot listen on {settings.host}:{settings.port}: {exc}",
            file=sys.stderr,
        )
        return 2
    return 0
