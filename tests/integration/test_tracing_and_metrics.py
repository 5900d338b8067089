"""Traces and metrics of the CPU mesh, as Grafana and a trace viewer would see them.

The four services run as real processes with ``OTEL_EXPORTER_OTLP_ENDPOINT``
pointed at an OTLP/gRPC collector that lives in this test and keeps every
span it receives. One spoken and one typed turn go through the gateway; then
the services are stopped (SIGTERM flushes their batch span processors) and the
test checks one trace per turn, spans from the gateway, voxtral and orpheus
processes in it, and the cross-process parent links. The gateway's
``/metrics`` must count both turns in its latency histograms.
"""

from __future__ import annotations

import asyncio
import threading
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from voxmesh.client import AsyncSession, AudioOut, TurnComplete
from voxmesh.mesh import Mesh
from voxmesh.processes import free_port
from voxmesh.synthetic_speech import speak
from voxmesh.talk import talk

SENTENCE = "what is the weather like today"
TYPED = "good morning"
#: The gateway's stage spans, children of its turn span (vad_decision only for speech).
GATEWAY_STAGE_SPANS = {"voxtral_first_token", "first_phrase", "orpheus_first_audio", "response_latency"}
STAGE_LABELS = (
    "vad_decision",
    "voxtral_first_token",
    "first_phrase",
    "orpheus_first_audio",
    "gateway_overhead",
)


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, object]


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver that keeps what it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    received.append(
                        Span(
                            service=str(resource.get("service.name", "")),
                            name=s.name,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_span_id=s.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in s.attributes},
                        )
                    )
        with self._lock:
            self.spans.extend(received)
        return trace_service_pb2.ExportTraceServiceResponse()


def _value(value: object) -> object:
    kind = value.WhichOneof("value")  # type: ignore[attr-defined]
    return getattr(value, kind) if kind else None


@pytest.fixture
def collector() -> Iterator[tuple[Collector, int]]:
    servicer = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port
    server.stop(None)


@pytest.fixture
def traced_mesh(collector: tuple[Collector, int]) -> Iterator[tuple[Mesh, dict[str, int]]]:
    """The CPU mesh exporting spans to ``collector``, with every metrics port on."""
    _, otlp_port = collector
    metrics_ports = {name: free_port() for name in ("gateway", "vad", "voxtral", "orpheus")}
    mesh = Mesh.build(
        {"vad": "webrtcvad", "voxtral": "echo", "orpheus": "espeak"}, metrics_ports=metrics_ports
    )
    for svc in mesh.services:
        svc.env.update(
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{otlp_port}",
            OTEL_EXPORTER_OTLP_INSECURE="true",
            OTEL_BSP_SCHEDULE_DELAY="200",
        )
    mesh.start(timeout_s=120)
    try:
        yield mesh, metrics_ports
    finally:
        mesh.stop()


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _sample(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def _typed_turn(address: str) -> list[object]:
    async with await AsyncSession.connect(address) as session:
        await session.send_text(TYPED)
        await session.end_input()
        return [e async for e in session.events()]


def test_one_trace_per_turn_across_processes_and_metrics_count_the_turns(
    traced_mesh: tuple[Mesh, dict[str, int]], collector: tuple[Collector, int]
) -> None:
    mesh, metrics_ports = traced_mesh
    gateway_metrics_port = metrics_ports["gateway"]
    before = _scrape(gateway_metrics_port)

    spoken = asyncio.run(talk(speak(SENTENCE), 16_000, mesh.gateway.address))
    typed = asyncio.run(_typed_turn(mesh.gateway.address))
    assert not spoken.errors, spoken.errors
    assert len(spoken.turns) == 1 and spoken.audio, spoken
    typed_done = [e for e in typed if isinstance(e, TurnComplete)]
    assert len(typed_done) == 1 and any(isinstance(e, AudioOut) for e in typed), typed
    turns_with_audio = 2

    # -------------------------------------------------------------- metrics
    after = _scrape(gateway_metrics_port)

    def delta(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    assert delta("voxmesh_response_latency_seconds_count") == turns_with_audio
    assert delta("voxmesh_voice_to_voice_seconds_count") == turns_with_audio
    assert delta("voxmesh_turns_total", outcome="completed") == 2
    # Every observation falls in a finite bucket: the buckets resolve the turn.
    assert delta("voxmesh_response_latency_seconds_bucket", le="10.0") == turns_with_audio
    stage_counts = {
        stage: delta("voxmesh_stage_latency_seconds_count", stage=stage) for stage in STAGE_LABELS
    }
    assert stage_counts["vad_decision"] == 1, stage_counts  # a typed turn has no VAD decision
    for stage in ("voxtral_first_token", "first_phrase", "orpheus_first_audio"):
        assert stage_counts[stage] == 2, stage_counts
    assert stage_counts["gateway_overhead"] >= 1, stage_counts

    # --------------------------------------------------------------- traces
    mesh.stop()  # SIGTERM: each process shuts its tracer provider down, flushing spans
    for svc in mesh.services:
        assert svc.exit_reason() == "exited with status 0", (svc.name, svc.exit_reason(), svc.log_tail())
    spans = list(collector[0].spans)
    by_id = {s.span_id: s for s in spans}
    by_trace: dict[str, list[Span]] = defaultdict(list)
    for s in spans:
        by_trace[s.trace_id].append(s)

    services = {s.service for s in spans}
    assert {"voxmesh-gateway", "voxmesh-voxtral", "voxmesh-orpheus"} <= services, services

    turn_spans = [s for s in spans if s.service == "voxmesh-gateway" and s.name == "turn"]
    assert len(turn_spans) == 2, [(s.name, s.attributes) for s in turn_spans]
    assert all(s.parent_span_id == "" for s in turn_spans), "a turn span is the root of its trace"
    # One trace per turn.
    assert len({s.trace_id for s in turn_spans}) == 2

    for turn_span in turn_spans:
        trace = by_trace[turn_span.trace_id]
        spoken_turn = any(s.name == "vad_decision" for s in trace)
        children = {s.name for s in trace if s.parent_span_id == turn_span.span_id}
        expected = GATEWAY_STAGE_SPANS | ({"vad_decision"} if spoken_turn else set())
        assert expected <= children, (turn_span.attributes, children)
        # Spans from the model processes, parented on the gateway's turn span.
        for service, name in (("voxmesh-voxtral", "voxtral.reply"), ("voxmesh-orpheus", "orpheus.turn")):
            remote = [s for s in trace if s.service == service and s.name == name]
            assert len(remote) == 1, (service, [(s.service, s.name) for s in trace])
            assert remote[0].parent_span_id == turn_span.span_id
        # Every span of the trace hangs off the gateway's turn span.
        for s in trace:
            root = s
            while root.parent_span_id:
                assert root.parent_span_id in by_id, (s.service, s.name, "parent not exported")
                root = by_id[root.parent_span_id]
            assert root is turn_span, (s.service, s.name)
    spoken_traces = [t for t in turn_spans if any(s.name == "vad_decision" for s in by_trace[t.trace_id])]
    assert len(spoken_traces) == 1

    # No span of voxtral or orpheus starts a trace of its own (context always arrived).
    for s in spans:
        if s.service in ("voxmesh-voxtral", "voxmesh-orpheus"):
            assert s.parent_span_id, (s.service, s.name, "root span: trace context was lost")
