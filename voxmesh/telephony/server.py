"""The phone edge's WebSocket server: one route per protocol, auth before audio, one CallBridge per call.

Routes: ``/twilio`` (Twilio Media Streams; Telnyx and Fonoster too),
``/asterisk`` (Asterisk's ``chan_websocket``) and ``/healthz``. Auth (when ``--auth-token``/``--auth-tokens-file`` is set): the
token comes in the stream URL's query (``?token=``), an ``Authorization:
Bearer`` header, or the ``token`` custom parameter of ``start`` (Twilio's
``<Parameter name="token">``: Twilio drops a ``<Stream url>``'s query string;
for Asterisk, the ``token`` channel variable or ``v(token=...)`` in the dial string). A
wrong token in the URL or header is refused at the handshake (401); otherwise
nothing after ``start`` is read until the token has been checked. The token is
also the bearer token the call presents to the gateway, so the gateway's own
``--auth-token`` guards this door too.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from voxmesh import logs
from voxmesh.bearer_tokens import BearerTokens
from voxmesh.client import AsyncSession, Overloaded, Unauthenticated, Unavailable, VoxmeshClientError
from voxmesh.edge_server import gateway_tls, run_edge, serve_until_stopped
from voxmesh.telephony import metrics
from voxmesh.telephony.asterisk import AsteriskLine, AsteriskStream
from voxmesh.telephony.call_bridge import CALL_RATE_HZ, CallBridge, PhoneLine
from voxmesh.telephony.call_frames import (
    CallerAudio,
    CallFrame,
    CallRefused,
    CallStart,
    CallStopped,
    KeyPressed,
    MarkPlayed,
    MediaFlow,
    Send,
)
from voxmesh.telephony.settings import TelephonySettings
from voxmesh.telephony.twilio import TwilioLine, TwilioStream

log = logging.getLogger("voxmesh.telephony")

TWILIO_PATH = "/twilio"
ASTERISK_PATH = "/asterisk"
ASTERISK_SUBPROTOCOL = "media"
#: The ``start`` custom parameter (TwiML ``<Parameter>``) that carries the token.
TOKEN_PARAMETER = "token"


class PhoneStream(Protocol):
    """A protocol module's parser: one WebSocket message in, one call frame out (or CallRefused)."""

    def parse(self, message: str | bytes) -> CallFrame: ...


@dataclass(frozen=True)
class PhoneProtocol:
    name: str
    stream: Callable[[int], PhoneStream]  # max_media_bytes → a parser for one call
    line: Callable[[Any, Send], PhoneLine]  # (that parser, send) → the bridge's line


PROTOCOLS = {
    TWILIO_PATH: PhoneProtocol("twilio", TwilioStream, TwilioLine),
    ASTERISK_PATH: PhoneProtocol("asterisk", AsteriskStream, AsteriskLine),
}


def url_token(request: Request) -> str | None:
    """The token of a handshake: ``?token=`` in the URL, else an ``Authorization: Bearer`` header."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
    if values := query.get(TOKEN_PARAMETER):
        return values[0]
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() or None if auth.lower().startswith("bearer ") else None


class TelephonyEdge:
    """The phone edge's WebSocket server."""

    def __init__(self, settings: TelephonySettings) -> None:
        self.settings = settings
        token = settings.auth_token.get_secret_value() if settings.auth_token else None
        self._tokens = BearerTokens(token, settings.auth_tokens_file)
        self._open = 0

    def _accepts(self, token: str | None) -> bool:
        return not self._tokens.required or (token is not None and self._tokens.accepts(f"Bearer {token}"))

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urllib.parse.urlsplit(request.path).path
        if path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "ok\n")
        if path not in PROTOCOLS:
            return connection.respond(
                http.HTTPStatus.NOT_FOUND,
                f"no such path; Twilio Media Streams are at {TWILIO_PATH}, Asterisk chan_websocket at {ASTERISK_PATH}\n",
            )
        token = url_token(request)
        if token is not None and not self._accepts(token):
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, "wrong token\n")
        if self._open >= self.settings.max_sessions:
            return connection.respond(http.HTTPStatus.TOO_MANY_REQUESTS, "too many calls\n")
        return None

    @staticmethod
    def _select_subprotocol(
        connection: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        # Asterisk's websocket_client offers "media" (protocols = media) and expects it back.
        return Subprotocol(ASTERISK_SUBPROTOCOL) if ASTERISK_SUBPROTOCOL in offered else None

    async def handle(self, websocket: ServerConnection) -> None:
        assert websocket.request is not None
        phone = PROTOCOLS[urllib.parse.urlsplit(websocket.request.path).path]
        protocol = phone.name
        self._open += 1
        metrics.CALLS.labels(protocol).inc()
        outcome = "hangup"
        stream = phone.stream(self.settings.max_media_ms * CALL_RATE_HZ // 1000)
        call = {"protocol": protocol}
        try:
            outcome = await self._call(websocket, phone, stream, call)
        except CallRefused as exc:
            outcome = exc.outcome
            log.warning(
                "call closed",
                extra=logs.fields(**call, outcome=outcome, reason=exc.reason),
            )
            with contextlib.suppress(ConnectionClosed):
                await websocket.close(exc.close_code, exc.reason[:120])
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == 1009:
                outcome = "protocol_error"
                reason = f"a message over {self.settings.max_message_bytes} bytes"
                log.warning(
                    "call closed",
                    extra=logs.fields(**call, outcome=outcome, reason=reason),
                )
            else:
                log.info(
                    "call closed",
                    extra=logs.fields(**call, outcome=outcome, reason="hung up"),
                )
        except Exception:
            # A bug here ends this call, logged with its traceback; the server and other calls go on.
            outcome = "internal_error"
            log.exception("call failed", extra=logs.fields(**call, outcome=outcome))
            with contextlib.suppress(ConnectionClosed):
                await websocket.close(1011, "internal error")
        finally:
            self._open -= 1
            metrics.CALLS.labels(protocol).dec()
            metrics.CALLS_ENDED.labels(protocol, outcome).inc()

    async def _call(
        self, websocket: ServerConnection, phone: PhoneProtocol, stream: PhoneStream, call: dict[str, str]
    ) -> str:
        """One call to its end; returns the outcome, raises CallRefused or ConnectionClosed.

        ``call`` gets the call's ids, for the log line of its end.
        """
        assert websocket.request is not None
        token = url_token(websocket.request)
        start = await self._await_start(websocket, stream)
        call.update(stream_sid=start.stream_id, call_sid=start.call_id)
        if token is None:
            token = start.parameters.get(TOKEN_PARAMETER)
            if not self._accepts(token):
                raise CallRefused("missing or wrong token (the start's 'token' parameter)", outcome="refused")
        session = await self._open_session(token)
        started = session.started
        if started is not None:
            logs.session_id_var.set(started.session_id)
        log.info(
            "call started",
            extra=logs.fields(**call),
        )
        line = phone.line(stream, self._sender(websocket))
        bridge = CallBridge(line, session, self.settings.mark_interval_ms)
        pump = asyncio.create_task(bridge.run(), name="call-pump")
        reader = asyncio.create_task(self._read(websocket, stream, bridge, line), name="call-reader")
        sender = asyncio.create_task(line.run(), name="call-sender")
        try:
            await asyncio.wait({pump, reader, sender}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, reader, sender):
                task.cancel()
            results = await asyncio.gather(pump, reader, sender, return_exceptions=True)
            await session.close()
        pump_result, reader_result, sender_result = results
        for result in (reader_result, pump_result, sender_result):
            if isinstance(result, VoxmeshClientError):
                raise CallRefused(f"gateway: {result.code}: {result.message}", 1011, "gateway_error")
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result
        if reader.done() and reader_result == "stop":
            log.info("call ended", extra=logs.fields(outcome="stop"))
            return "stop"
        raise CallRefused("the gateway ended the session", 1011, "gateway_error")

    def _sender(self, websocket: ServerConnection) -> Send:
        """Sends to the phone side; one that stops reading is cut off after ``send_timeout_s``."""
        timeout_s = self.settings.send_timeout_s

        async def send(message: str | bytes) -> None:
            try:
                async with asyncio.timeout(timeout_s):
                    await websocket.send(message)
            except TimeoutError:
                raise CallRefused("the phone side stopped reading", outcome="hangup") from None

        return send

    async def _await_start(self, websocket: ServerConnection, stream: PhoneStream) -> CallStart:
        try:
            async with asyncio.timeout(self.settings.start_timeout_s):
                async for message in websocket:
                    frame = stream.parse(message)
                    if isinstance(frame, CallStart):
                        return frame
                    if isinstance(frame, CallStopped):
                        raise CallRefused("stop before start", outcome="hangup")
        except TimeoutError:
            raise CallRefused(
                f"no start within {self.settings.start_timeout_s:g} s", outcome="refused"
            ) from None
        raise ConnectionClosed(None, None)

    async def _open_session(self, token: str | None) -> AsyncSession:
        try:
            return await AsyncSession.connect(
                self.settings.gateway,
                token=token,
                sample_rate_hz=CALL_RATE_HZ,
                output_sample_rate_hz=CALL_RATE_HZ,
                voice=self.settings.voice,
                language=self.settings.language,
                system_prompt=self.settings.system_prompt,
                **gateway_tls(self.settings),
            )
        except Unauthenticated as exc:
            raise CallRefused(f"the gateway refused the token: {exc.message}", outcome="refused") from None
        except (Overloaded, Unavailable) as exc:
            raise CallRefused(f"gateway: {exc.code}: {exc.message}", 1013, "gateway_error") from None
        except VoxmeshClientError as exc:
            raise CallRefused(f"gateway: {exc.code}: {exc.message}", 1011, "gateway_error") from None

    async def _read(
        self, websocket: ServerConnection, stream: PhoneStream, bridge: CallBridge, line: PhoneLine
    ) -> str:
        async for message in websocket:
            frame = stream.parse(message)
            if isinstance(frame, CallerAudio):
                await bridge.caller_audio(frame.ulaw)
            elif isinstance(frame, MarkPlayed):
                await bridge.mark_played(frame.name)
            elif isinstance(frame, KeyPressed):
                await bridge.key_pressed(frame.digit)
            elif isinstance(frame, MediaFlow):
                await line.flow(frame.paused)
            elif isinstance(frame, CallStopped):
                return "stop"
        raise ConnectionClosed(None, None)

    async def serve_forever(self) -> None:
        await serve_until_stopped(
            self.settings,
            self.handle,
            service="telephony",
            max_message_bytes=self.settings.max_message_bytes,
            process_request=self._process_request,
            select_subprotocol=self._select_subprotocol,
            log=log,
            twilio=TWILIO_PATH,
            asterisk=ASTERISK_PATH,
        )


def run(settings: TelephonySettings) -> int:
    """``voxmesh serve telephony``: logs, event loop, serve until SIGTERM."""
    return run_edge("telephony", settings, TelephonyEdge(settings).serve_forever)
