"""OpenTelemetry tracing: one trace per turn, a span per stage.

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (then spans go out by OTLP
gRPC). Context crosses processes as W3C trace context: in gRPC metadata for a
stream and in the ``trace_context`` field of per-turn messages, since one
stream carries many turns.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

_configured = False


def setup(service: str, processor: SpanProcessor | None = None) -> bool:
    """Install a tracer provider for this process; True if spans are exported."""
    global _configured
    if _configured:
        return True
    if processor is None:
        if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            return False
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        processor = BatchSpanProcessor(OTLPSpanExporter())
    provider = TracerProvider(resource=Resource.create({"service.name": f"voxmesh-{service}"}))
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    _configured = True
    return True


def shutdown() -> None:
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def inject(span_context: context.Context | None = None) -> dict[str, str]:
    """W3C headers for the current (or given) context, to put in a message or metadata."""
    carrier: MutableMapping[str, str] = {}
    propagate.inject(carrier, context=span_context)
    return dict(carrier)


def extract(carrier: Mapping[str, str]) -> context.Context:
    """The context a peer sent (empty carrier → a new root)."""
    return propagate.extract(dict(carrier))
