"""Prometheus metrics of the phone edge (its own /metrics port, 9405 by default)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from voxmesh.metrics import LATENCY_BUCKETS_S

CALLS = Gauge("voxmesh_telephony_calls", "Calls in progress on the phone edge", ["protocol"])
CALLS_ENDED = Counter(
    "voxmesh_telephony_calls_ended_total",
    "Calls ended, by protocol and outcome (stop, hangup, refused, protocol_error, gateway_error, internal_error)",
    ["protocol", "outcome"],
)
MEDIA_SECONDS = Counter(
    "voxmesh_telephony_media_seconds", "Call audio carried, seconds, by direction (in, out)", ["direction"]
)
CLEARS = Counter("voxmesh_telephony_clears_total", "Barge-ins: the phone side's buffered reply cleared")
DTMF_DIGITS = Counter("voxmesh_telephony_dtmf_digits_total", "DTMF key presses passed to the conversation")
VOICE_TO_VOICE = Histogram(
    "voxmesh_telephony_voice_to_voice_seconds",
    "Voice-to-voice of phone turns as the gateway measured it (first reply audio - t_end)",
    buckets=LATENCY_BUCKETS_S,
)
