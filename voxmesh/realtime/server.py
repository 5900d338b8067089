"""The WebSocket server of the Realtime edge: handshake, auth, one RealtimeConnection per socket.

Auth: the client's token comes from ``Authorization: Bearer`` or, for browsers
(which cannot set headers on a WebSocket), the ``openai-insecure-api-key.TOKEN``
subprotocol; it is forwarded to the gateway as its bearer token, so the
gateway's ``--auth-token`` guards both doors.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import http
import json
import logging
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from voxmesh.bearer_tokens import BearerTokens
from voxmesh.client import Overloaded, Unauthenticated, Unavailable, VoxmeshClientError
from voxmesh.edge_server import gateway_tls, run_edge, serve_until_stopped
from voxmesh.realtime import metrics
from voxmesh.realtime.connection import EdgeLimits, RealtimeConnection, open_gateway
from voxmesh.realtime.protocol_error import ProtocolError
from voxmesh.realtime.server_events import Ids
from voxmesh.realtime.session_config import EdgeSessionConfig
from voxmesh.realtime.settings import RealtimeSettings

log = logging.getLogger("voxmesh.realtime")

REALTIME_PATH = "/v1/realtime"
#: The subprotocol browsers offer (with the key one) and OpenAI's server selects.
REALTIME_SUBPROTOCOL = "realtime"
KEY_SUBPROTOCOL_PREFIX = "openai-insecure-api-key."
#: Close codes (RFC 6455): the token was refused / the client stopped reading / the gateway is gone.
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013
CLOSE_INTERNAL = 1011
PAGE_DIR = Path(__file__).with_name("page")


def client_token(headers: Headers) -> str | None:
    """The bearer token of a handshake: the Authorization header, else the key subprotocol."""
    auth = headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    for value in headers.get_all("Sec-WebSocket-Protocol"):
        for proto in value.split(","):
            proto = proto.strip()
            if proto.startswith(KEY_SUBPROTOCOL_PREFIX):
                return proto[len(KEY_SUBPROTOCOL_PREFIX) :] or None
    return None


class RealtimeEdge:
    """The edge's WebSocket server; one RealtimeConnection per accepted socket."""

    def __init__(self, settings: RealtimeSettings) -> None:
        self.settings = settings
        token = settings.auth_token.get_secret_value() if settings.auth_token else None
        self._tokens = BearerTokens(token, settings.auth_tokens_file)
        self._ids = Ids()
        self._limits = EdgeLimits(
            max_buffer_bytes=int(settings.max_buffer_s * 48_000 * 2),
            commit_silence_ms=settings.commit_silence_ms,
        )
        self._open = 0

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "ok\n")
        if path in ("/", "/index.html") and (PAGE_DIR / "index.html").exists():
            return _static(connection, PAGE_DIR / "index.html", "text/html; charset=utf-8")
        if path.startswith("/page/") and (PAGE_DIR / path.removeprefix("/page/")).is_file():
            name = path.removeprefix("/page/")
            if "/" not in name and not name.startswith("."):
                return _static(connection, PAGE_DIR / name, "text/javascript; charset=utf-8")
        if path != REALTIME_PATH:
            return connection.respond(
                http.HTTPStatus.NOT_FOUND, f"no such path; the Realtime API is at {REALTIME_PATH}\n"
            )
        if self._tokens.required:
            if not self._tokens.accepts(f"Bearer {client_token(request.headers) or ''}"):
                return connection.respond(http.HTTPStatus.UNAUTHORIZED, "missing or wrong bearer token\n")
        if self._open >= self.settings.max_sessions:
            return connection.respond(http.HTTPStatus.TOO_MANY_REQUESTS, "too many sessions\n")
        return None

    @staticmethod
    def _select_subprotocol(
        connection: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        # A browser that offered subprotocols drops a connection that selects none.
        if REALTIME_SUBPROTOCOL in offered:
            return Subprotocol(REALTIME_SUBPROTOCOL)
        return None

    async def handle(self, websocket: ServerConnection) -> None:
        self._open += 1
        metrics.CONNECTIONS.inc()
        try:
            await self._converse(websocket)
        finally:
            self._open -= 1
            metrics.CONNECTIONS.dec()

    async def _converse(self, websocket: ServerConnection) -> None:
        assert websocket.request is not None
        token = client_token(websocket.request.headers)
        timeout = self.settings.send_timeout_s
        raw = websocket.transport.get_extra_info("socket")
        if raw is not None and self.settings.send_buffer_bytes > 0:
            # Loopback autotuning lets the kernel hold megabytes for a stalled
            # client, so the send timeout would never fire; a bounded buffer
            # (256 KiB is ~4 s of 24 kHz audio as base64) makes it fire.
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.settings.send_buffer_bytes)

        async def send(event: dict[str, Any]) -> None:
            # A client that never reads fills the socket; after the timeout it
            # is cut off (1008) instead of holding its gateway session forever.
            try:
                async with asyncio.timeout(timeout):
                    await websocket.send(json.dumps(event, separators=(",", ":")))
            except TimeoutError:
                log.info("client not reading: closing")
                websocket.transport.abort()
                raise ConnectionClosed(None, None) from None

        try:
            session = await open_gateway(self.settings.gateway, token, EdgeSessionConfig(), gateway_tls(self.settings))
        except (ProtocolError, VoxmeshClientError) as exc:
            await self._refuse(websocket, send, exc)
            return
        connection = RealtimeConnection(
            send, self.settings.gateway, token, session, self._limits, self._ids, gateway_tls(self.settings)
        )
        try:
            await connection.start()
            reader = asyncio.create_task(self._read(websocket, connection))
            pump = asyncio.create_task(connection.pump_done())
            done, _ = await asyncio.wait({reader, pump}, return_when=asyncio.FIRST_COMPLETED)
            for task in (reader, pump):
                task.cancel()
            for task in (reader, pump):
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await task
            if pump in done and websocket.state.name == "OPEN":
                await websocket.close(CLOSE_INTERNAL, "the gateway stream ended")
        except ConnectionClosed:
            pass
        finally:
            await connection.close()

    async def _read(self, websocket: ServerConnection, connection: RealtimeConnection) -> None:
        async for message in websocket:
            if isinstance(message, bytes):
                await connection.send_error(
                    ProtocolError(
                        "binary frames are not part of the protocol: send JSON text", code="invalid_json"
                    ),
                    None,
                )
                continue
            await connection.handle_text(message)

    async def _refuse(self, websocket: ServerConnection, send: Any, exc: Exception) -> None:
        if isinstance(exc, Unauthenticated):
            error = ProtocolError(f"the gateway refused the token: {exc.message}", code="invalid_api_key")
            close = CLOSE_POLICY
        elif isinstance(exc, Overloaded | Unavailable):
            error = ProtocolError(
                f"gateway: {exc.code}: {exc.message}", code=exc.code.lower(), error_type="server_error"
            )
            close = CLOSE_TRY_AGAIN
        elif isinstance(exc, ProtocolError):
            error, close = exc, CLOSE_INTERNAL
        else:
            assert isinstance(exc, VoxmeshClientError)
            error = ProtocolError(
                f"gateway: {exc.code}: {exc.message}", code=exc.code.lower(), error_type="server_error"
            )
            close = CLOSE_INTERNAL
        metrics.ERRORS.labels(error.code).inc()
        with contextlib.suppress(ConnectionClosed):
            await send({"type": "error", "event_id": self._ids.new("event"), "error": error.body(None)})
            await websocket.close(close, error.message[:120])

    async def serve_forever(self) -> None:
        await serve_until_stopped(
            self.settings,
            self.handle,
            service="realtime",
            max_message_bytes=self.settings.max_message_bytes,
            process_request=self._process_request,
            select_subprotocol=self._select_subprotocol,
            log=log,
            path=REALTIME_PATH,
        )


def _static(connection: ServerConnection, path: Path, content_type: str) -> Response:
    body = path.read_bytes()
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-cache"),
        ]
    )
    return Response(http.HTTPStatus.OK.value, http.HTTPStatus.OK.phrase, headers, body)


def run(settings: RealtimeSettings) -> int:
    """``voxmesh serve realtime``: logs, event loop, serve until SIGTERM."""
    return run_edge("realtime", settings, RealtimeEdge(settings).serve_forever)
