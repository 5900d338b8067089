"""A refused client event, in the shape of OpenAI's Realtime ``error`` event."""

from __future__ import annotations

from typing import Any


class ProtocolError(Exception):
    """One ``error`` event: ``param`` names the field that was wrong (dotted path)."""

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str = "invalid_value",
        error_type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.error_type = error_type

    def body(self, event_id: str | None) -> dict[str, Any]:
        """The ``error`` object; ``event_id`` is the client event that caused it, if it had one."""
        return {
            "type": self.error_type,
            "code": self.code,
            "message": self.message,
            "param": self.param,
            "event_id": event_id,
        }


def unsupported(param: str, what: str) -> ProtocolError:
    """A feature of the OpenAI protocol that voxmesh does not have."""
    return ProtocolError(f"{param}: {what} is not supported by voxmesh", param=param, code="unsupported")
