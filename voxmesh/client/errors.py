"""Typed client errors: ``grpc.RpcError`` turned into what went wrong."""

from __future__ import annotations

import grpc


class VoxmeshClientError(Exception):
    """A call to the gateway failed; ``code`` is the gRPC status name."""

    retryable = False

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class InvalidRequest(VoxmeshClientError):
    """The gateway rejected what was sent (the message names the field). Permanent."""


class Unauthenticated(VoxmeshClientError):
    """Missing or wrong bearer token."""


class Overloaded(VoxmeshClientError):
    """Too many sessions, or this client read too slowly. Retry later."""

    retryable = True


class Unavailable(VoxmeshClientError):
    """The gateway is down, restarting or draining. Retry with backoff."""

    retryable = True


_BY_CODE: dict[grpc.StatusCode, type[VoxmeshClientError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequest,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Overloaded,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
}


def from_rpc_error(error: grpc.RpcError) -> VoxmeshClientError:
    code = error.code()  # type: ignore[attr-defined]
    cls = _BY_CODE.get(code, VoxmeshClientError)
    return cls(code.name, error.details() or "")  # type: ignore[attr-defined]
