"""The one place where exceptions become gRPC statuses, plus bearer-token auth.

Servicers and engines raise :mod:`voxmesh.errors` types; this interceptor
aborts the RPC with the matching code and the error's message (which names
the field at fault). Anything else becomes INTERNAL and is logged with its
traceback, so no exception ever kills the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from voxmesh.bearer_tokens import BearerTokens
from voxmesh.errors import VoxmeshError

log = logging.getLogger(__name__)

#: How long a refused stream waits for the caller's first message (see _Watched).
_FIRST_MESSAGE_WAIT_S = 1.0

STATUS_BY_NAME: dict[str, grpc.StatusCode] = {code.name: code for code in grpc.StatusCode}

# Probes must work without the token (Kubernetes gRPC probes send none). Reflection
# is not open: it lists every method a caller could then try (grpcurl takes -H).
_OPEN_METHODS = ("/grpc.health.v1.Health/",)


def status_of(error: VoxmeshError) -> grpc.StatusCode:
    return STATUS_BY_NAME.get(error.status, grpc.StatusCode.INTERNAL)


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Map domain errors to statuses; check the bearer token when one is set."""

    def __init__(self, tokens: BearerTokens | None = None) -> None:
        self._tokens = tokens if tokens is not None and tokens.required else None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or details.method.startswith(_OPEN_METHODS):
            return handler
        authorized = self._tokens is None or self._authorized(details)
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._wrap_stream(handler.stream_stream, authorized),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, authorized),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _authorized(self, details: grpc.HandlerCallDetails) -> bool:
        assert self._tokens is not None
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                return self._tokens.accepts(value)
        return False

    @staticmethod
    async def _abort(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> None:
        if isinstance(exc, VoxmeshError):
            log.info("rpc failed: %s", exc, extra={"fields": {"status": exc.status, "method": method}})
            await context.abort(status_of(exc), str(exc))
        log.exception("unexpected error in %s", method, exc_info=exc)
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")

    def _wrap_stream(self, behavior: Callable[..., Any], authorized: bool) -> Callable[..., Any]:
        async def wrapper(request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
            requests = _Watched(request_iterator)
            if not authorized:
                await requests.take_first_if_unread()
                await context.abort(
                    grpc.StatusCode.UNAUTHENTICATED, "authorization: missing or wrong bearer token"
                )
            try:
                async for response in behavior(requests, context):
                    yield response
            except (grpc.aio.AbortError, GeneratorExit):
                raise
            except DecodeError as exc:
                # Bytes that do not parse as the request message are the caller's fault.
                log.info("undecodable request", extra={"fields": {"error": str(exc)}})
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"request: not a valid message: {exc}")
            except Exception as exc:
                # A refusal before anything was read (max_sessions) must not race the first write.
                await requests.take_first_if_unread()
                await self._abort(context, exc, "stream")

        return wrapper

    def _wrap_unary(self, behavior: Callable[..., Any], authorized: bool) -> Callable[..., Any]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if not authorized:
                await context.abort(
                    grpc.StatusCode.UNAUTHENTICATED, "authorization: missing or wrong bearer token"
                )
            try:
                return await behavior(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await self._abort(context, exc, "unary")

        return wrapper


class _Watched:
    """The request stream, remembering whether the servicer has read from it.

    grpc's asyncio client loses the status (it sees INTERNAL, "Internal error
    from Core") when a call ends while its first write is still in flight
    (grpc/grpc#36066: the failed write overwrites the server's status). So a
    stream refused before the servicer read anything (bad token, max_sessions)
    first takes the caller's opening message, waiting at most a second.
    """

    def __init__(self, requests: AsyncIterator[Any]) -> None:
        self._requests = requests
        self.read_any = False

    def __aiter__(self) -> _Watched:
        return self

    async def __anext__(self) -> Any:
        self.read_any = True
        return await anext(self._requests)

    async def take_first_if_unread(self) -> None:
        if self.read_any:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(anext(self), _FIRST_MESSAGE_WAIT_S)
