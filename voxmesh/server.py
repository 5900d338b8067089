"""Run one gRPC service process: health, reflection, metrics, graceful stop.

Every service is the same shape: load the engine (before reporting SERVING),
add the servicer, serve until SIGTERM/SIGINT, then stop accepting, let
in-flight streams finish within the grace period, close the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from voxmesh import logs, tracing
from voxmesh.bearer_tokens import BearerTokens
from voxmesh.errors import EngineOverloaded, EngineUnavailable, VoxmeshError
from voxmesh.exit_status import ExitStatus
from voxmesh.gpu_memory import report_gpu_memory
from voxmesh.grpc_errors import ErrorInterceptor
from voxmesh.metrics import ACTIVE_SESSIONS, SESSION_CAPACITY
from voxmesh.metrics_server import start_metrics
from voxmesh.model_source import LOAD_ERRORS, ModelNotLoadable, not_loadable
from voxmesh.settings import ServiceSettings

log = logging.getLogger(__name__)


#: Longest a client connection lives before the server asks it to reconnect
#: (GOAWAY); the client re-resolves DNS then, so replicas added behind a
#: Service are found. gRPC adds up to +-10 % jitter.
MAX_CONNECTION_AGE_MS = 30_000
#: What a connection past its age gets to finish its streams: no limit, so a
#: live session stream is never cut (new streams go on a new connection).
MAX_CONNECTION_AGE_GRACE_MS = 2**31 - 1


class SessionSlots:
    """Counts open streams; past ``limit`` new ones are refused (RESOURCE_EXHAUSTED).

    While draining (SIGTERM) every new stream is refused UNAVAILABLE, so the
    gateway places it on another replica; the streams held go on.
    """

    def __init__(self, limit: int, on_change: Callable[[int], None] | None = None) -> None:
        self.limit = limit
        self.active = 0
        self.draining = False
        #: Set on drain: streams that hold no turn end then (voxmesh.idle_drain).
        self.drained = asyncio.Event()
        self._on_change = on_change
        self._on_drain: Callable[[], None] | None = None

    @classmethod
    def for_service(cls, service: str, limit: int) -> SessionSlots:
        """Slots that export ``voxmesh_active_sessions`` and ``voxmesh_session_capacity`` for ``service``."""
        capacity = SESSION_CAPACITY.labels(service)
        capacity.set(limit)
        slots = cls(limit, ACTIVE_SESSIONS.labels(service).set)
        slots._on_drain = lambda: capacity.set(0)
        return slots

    def drain(self) -> None:
        """Refuse new streams from now on (the process is stopping)."""
        self.draining = True
        self.drained.set()
        if self._on_drain:
            self._on_drain()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        if self.draining:
            raise EngineUnavailable("draining (shutting down): open the stream on another replica")
        if self.active >= self.limit:
            raise EngineOverloaded(f"max_sessions reached ({self.limit} open); retry later")
        self.active += 1
        self._changed()
        try:
            yield
        finally:
            self.active -= 1
            self._changed()

    def _changed(self) -> None:
        if self._on_change:
            self._on_change(self.active)


@dataclass
class ServiceSpec:
    """What a service contributes to the common process shell."""

    #: "vad", "voxtral", "orpheus" or "gateway" (log and metrics label).
    name: str
    #: Full gRPC service names registered (for health and reflection).
    service_names: list[str]
    #: Adds the servicer(s) to the server.
    register: Callable[[grpc.aio.Server], None]
    #: Loads models; runs before the port reports SERVING.
    startup: Callable[[], Awaitable[None]] | None = None
    #: Called on SIGTERM before the server stops (e.g. refuse new turns).
    drain: Callable[[], Awaitable[None]] | None = None
    #: Frees the engine after the server stopped.
    shutdown: Callable[[], Awaitable[None]] | None = None
    #: The models ``startup`` loads, by the flag that sets each (``--model``):
    #: named in the one line that says a model could not be loaded.
    models: dict[str, str] = field(default_factory=dict)
    extra_interceptors: list[grpc.aio.ServerInterceptor] = field(default_factory=list)
    #: The servicer's session slots: on SIGTERM they refuse new streams at once.
    slots: SessionSlots | None = None
    #: Whether the service can take work once started, now and on every change: called
    #: once with the function that sets its health status (the gateway reports
    #: NOT_SERVING while a stage is unusable). None: SERVING once started.
    readiness: Callable[[Callable[[bool], Awaitable[None]]], Awaitable[None]] | None = None


#: The health name that answers SERVING from start-up until SIGTERM, whatever the
#: service's readiness ("" and its service names): for liveness probes.
LIVENESS = "liveness"


def _server_credentials(settings: ServiceSettings) -> grpc.ServerCredentials | None:
    if not settings.tls_cert:
        if settings.tls_ca:
            raise SystemExit(
                "tls_ca is set but tls_cert is not: mutual TLS needs the server's own certificate"
            )
        return None
    if not settings.tls_key:
        raise SystemExit("tls_cert is set but tls_key is not: both are needed for TLS")
    with open(settings.tls_key, "rb") as key, open(settings.tls_cert, "rb") as cert:
        pair = [(key.read(), cert.read())]
    if not settings.tls_ca:
        return grpc.ssl_server_credentials(pair)
    # Mutual TLS: a caller without a certificate signed by tls_ca fails the handshake.
    with open(settings.tls_ca, "rb") as ca:
        return grpc.ssl_server_credentials(pair, root_certificates=ca.read(), require_client_auth=True)


async def serve(spec: ServiceSpec, settings: ServiceSettings) -> None:
    """Serve until SIGTERM/SIGINT, then drain and exit."""
    log.info("starting %s", spec.name, extra=logs.fields(settings=settings.masked()))
    token = settings.auth_token.get_secret_value() if settings.auth_token else None
    server = grpc.aio.server(
        interceptors=[
            ErrorInterceptor(BearerTokens(token, settings.auth_tokens_file)),
            *spec.extra_interceptors,
        ],
        options=[
            ("grpc.max_receive_message_length", 1024 * 1024),
            ("grpc.so_reuseport", 0),
            # The gateway pings its stages every 20 s to notice a dead peer. By
            # default a server allows one ping per 5 min on a stream with no data
            # and answers the third with GOAWAY "too_many_pings", which killed
            # every session's orpheus stream under load (found by voxmesh bench).
            ("grpc.keepalive_permit_without_calls", 1),
            # A vanished or frozen client is pinged every keepalive_time_s and dropped a
            # third of that later, freeing its streams and session slots (gRPC's default
            # waits two hours: such a client held a slot of the gateway for that long).
            ("grpc.keepalive_time_ms", int(settings.keepalive_time_s * 1000)),
            ("grpc.keepalive_timeout_ms", max(1000, int(settings.keepalive_time_s * 1000 / 3))),
            ("grpc.http2.ping_timeout_ms", max(1000, int(settings.keepalive_time_s * 1000 / 3))),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_MS),
            ("grpc.max_connection_age_grace_ms", MAX_CONNECTION_AGE_GRACE_MS),
        ],
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    spec.register(server)
    reflection.enable_server_reflection(
        [
            *spec.service_names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    for name in ("", *spec.service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    address = f"{settings.host}:{settings.port}"
    creds = _server_credentials(settings)
    port = server.add_secure_port(address, creds) if creds else server.add_insecure_port(address)
    if port == 0:
        raise SystemExit(f"cannot listen on {address} (port in use?)")
    await server.start()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    # SIGTERM during start-up stops the service at once instead of after the load (a
    # real-weights vLLM load takes minutes; engines load off the loop: voxmesh.engine_loading).
    starting = asyncio.create_task(_start_up(spec), name=f"{spec.name}-start-up")
    stopping = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            log.info("stopping during start-up: the engine load is abandoned")
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        else:
            starting.result()
    except BaseException:
        starting.cancel()
        # Stopped here, not left to the garbage collector: a grpc server
        # collected after its loop closed prints "Event loop is closed".
        await server.stop(0)
        raise
    finally:
        stopping.cancel()
    if starting.cancelled():
        await server.stop(0)
        if spec.shutdown:
            await spec.shutdown()  # what had loaded before the signal (e.g. one of two models)
        tracing.shutdown()
        log.info("stopped")
        return
    metrics_port = start_metrics(settings)

    async def report(serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *spec.service_names):
            await health_servicer.set(name, status)

    if spec.readiness is None:
        await report(True)
    else:
        await spec.readiness(report)
    # Alive, whatever readiness says: a liveness probe asks for this name, so a gateway
    # waiting for a stage is not restarted (which would not bring the stage back).
    await health_servicer.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "serving",
        extra=logs.fields(service=spec.name, port=port, metrics_port=metrics_port, tls=creds is not None),
    )

    gpu_gauge = asyncio.create_task(report_gpu_memory(), name="gpu-memory")
    await stop.wait()
    gpu_gauge.cancel()
    log.info("stopping: draining in-flight streams", extra=logs.fields(grace_s=settings.grace_s))
    if spec.slots is not None:
        spec.slots.drain()
    await health_servicer.enter_graceful_shutdown()
    if spec.drain:
        await spec.drain()
    await server.stop(settings.grace_s)
    if spec.shutdown:
        await spec.shutdown()
    tracing.shutdown()
    log.info("stopped")


async def _start_up(spec: ServiceSpec) -> None:
    if spec.startup is None:
        return
    try:
        await spec.startup()
    except LOAD_ERRORS as exc:
        if not spec.models:
            raise
        # The loader's traceback goes to the log; the operator gets one line.
        log.debug("model load failed", exc_info=exc)
        raise not_loadable(spec.models, exc) from exc


def run(service: str, spec_factory: Callable[[], ServiceSpec], settings: ServiceSettings) -> None:
    """Entry point for ``voxmesh serve``: logs, event loop, serve."""
    logs.configure(service, settings.log_level)
    tracing.setup(service)
    if settings.uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            uvloop.install()

    async def main() -> None:
        await serve(spec_factory(), settings)

    try:
        asyncio.run(main())
    except VoxmeshError as exc:
        # A start-up refusal (engine not installed, model not loadable, bad
        # setting) is the operator's to fix: one clear line, no traceback, and
        # a status that tells a supervisor not to retry (voxmesh.exit_status).
        status = ExitStatus.MODEL_NOT_LOADABLE if isinstance(exc, ModelNotLoadable) else ExitStatus.BAD_SETUP
        log.error("cannot start %s: %s", service, exc, extra=logs.fields(code=exc.status))
        print(f"voxmesh serve {service}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(int(status)) from None
