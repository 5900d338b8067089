"""Domain errors raised by engines and servicers.

Engines never import gRPC: each error names its status as a string and the
one interceptor in :mod:`voxmesh.grpc_errors` turns it into a gRPC status.
"""


class VoxmeshError(Exception):
    """Base of every error that crosses a service boundary."""

    status = "INTERNAL"
    retryable = False


class InvalidArgument(VoxmeshError):
    """The caller sent something malformed; the message names the field."""

    status = "INVALID_ARGUMENT"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class InvalidAudio(InvalidArgument):
    """Audio bytes that are not what the config promised."""


class UnknownVoice(InvalidArgument):
    """A voice the speech engine does not have."""


class EngineOverloaded(VoxmeshError):
    """No free slot (sessions, KV cache, batch); retry later."""

    status = "RESOURCE_EXHAUSTED"
    retryable = True


class EngineUnavailable(VoxmeshError):
    """The engine (or a stage behind it) cannot serve right now."""

    status = "UNAVAILABLE"
    retryable = True


class UtteranceTooLong(InvalidArgument):
    """An utterance beyond what the model accepts; refused, never truncated."""


class EngineNotInstalled(VoxmeshError):
    """The engine's packages are missing: fail at start-up, say what to install."""

    status = "FAILED_PRECONDITION"
