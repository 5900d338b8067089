"""Prometheus metrics, named after DESIGN.md's latency terms.

Every process exports on its own ``/metrics`` port. Latency histograms use
buckets that resolve 10 ms to 1 s, where the product's budget lives.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

#: 5 ms .. 10 s, dense between 10 ms and 1 s.
LATENCY_BUCKETS_S = (
    0.005,
    0.01,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    1.5,
    2.5,
    5.0,
    10.0,
)

RESPONSE_LATENCY = Histogram(
    "voxmesh_response_latency_seconds",
    "First reply audio sent to the client minus the endpoint (VAD speech_ended)",
    buckets=LATENCY_BUCKETS_S,
)
VOICE_TO_VOICE = Histogram(
    "voxmesh_voice_to_voice_seconds",
    "First reply audio sent to the client minus t_end (the user's last voiced sample)",
    buckets=LATENCY_BUCKETS_S,
)
STAGE_LATENCY = Histogram(
    "voxmesh_stage_latency_seconds",
    "Per-turn stage marks: vad_decision (endpoint - t_end); the others count from the endpoint",
    ["stage"],
    buckets=LATENCY_BUCKETS_S,
)
TURNS = Counter("voxmesh_turns_total", "Turns ended, by outcome", ["outcome"])
SPECULATIVE_TURNS = Counter(
    "voxmesh_speculative_turns",
    "Tentative replies started in a user's pause, by outcome (started, confirmed, discarded)",
    ["outcome"],
)
SPECULATIVE_DISCARDED_SECONDS = Counter(
    "voxmesh_speculative_discarded_seconds",
    "Wall time the stages spent on tentative replies that were discarded (model time thrown away)",
)
HELD_ENDPOINTS = Counter(
    "voxmesh_held_endpoints",
    "Endpoints held because the words so far end unfinished, by outcome (held, then continued or released; "
    "overruled: not held, a doubtful last word against speech that sounds finished)",
    ["outcome"],
)
TOOL_CALLS = Counter(
    "voxmesh_tool_calls",
    "Tool calls by outcome: called (sent to the client), held (made in a tentative reply), "
    "discarded (held, the tentative reply dropped), answered, cancelled (barge-in, failed turn, "
    "session end), timed_out (no result within --tool-result-timeout-s), invalid_arguments, "
    "refused_result (a ToolResult for an unknown, cancelled or answered call)",
    ["outcome"],
)
TOOL_RESULT_LATENCY = Histogram(
    "voxmesh_tool_result_latency_seconds",
    "ToolCall sent to the client until its ToolResult arrived",
    buckets=(*LATENCY_BUCKETS_S, 30.0, 60.0),
)
INTERRUPTIONS = Counter("voxmesh_interruptions_total", "Replies cut short by barge-in or Control.INTERRUPT")
ERRORS = Counter(
    "voxmesh_errors_total", "Errors reported to clients, by stage and status code", ["stage", "code"]
)
ACTIVE_SESSIONS = Gauge("voxmesh_active_sessions", "Streams open on this process", ["service"])
#: The autoscaling signal is ACTIVE_SESSIONS / SESSION_CAPACITY (docs/deploy.md, Scaling).
SESSION_CAPACITY = Gauge(
    "voxmesh_session_capacity", "Streams this process admits (--max-sessions); 0 while draining", ["service"]
)
QUEUE_DEPTH = Gauge("voxmesh_queue_depth", "Messages waiting in a bounded queue", ["queue"])
#: voxtral's second autoscaling signal: sessions can be under the limit while
#: the engine is saturated, and then replies wait here (docs/deploy.md, Scaling).
REPLY_QUEUE_DEPTH = Gauge(
    "voxmesh_reply_queue_depth",
    "Replies asked of the engine that have no first token yet",
    ["service"],
)
SYNTHESIS_RTF = Histogram(
    "voxmesh_synthesis_real_time_factor",
    "Synthesis wall time divided by the audio duration produced (below 1 is faster than real time)",
    ["engine"],
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0),
)
GPU_MEMORY = Gauge("voxmesh_gpu_memory_bytes", "CUDA memory allocated by this process (torch)", ["device"])
GPU_DEVICE_MEMORY_USED = Gauge(
    "voxmesh_gpu_device_memory_used_bytes", "Memory in use on the card, every process (NVML)", ["device"]
)
GPU_DEVICE_MEMORY_TOTAL = Gauge(
    "voxmesh_gpu_device_memory_total_bytes", "The card's memory (NVML)", ["device"]
)
