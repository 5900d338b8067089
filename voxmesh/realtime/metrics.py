"""Prometheus metrics of the Realtime edge (its own /metrics port, 9404 by default)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CONNECTIONS = Gauge("voxmesh_realtime_connections", "Open Realtime WebSocket connections")
CLIENT_EVENTS = Counter("voxmesh_realtime_client_events_total", "Client events received, by type", ["type"])
ERRORS = Counter("voxmesh_realtime_errors_total", "error events sent, by code", ["code"])
RESPONSES = Counter("voxmesh_realtime_responses_total", "Responses ended, by status", ["status"])
