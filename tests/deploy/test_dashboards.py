"""The Grafana dashboard parses and queries only metrics the code exports."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.deploy import ROOT

DASHBOARD = ROOT / "dashboards" / "voxmesh.json"
CHART_COPY = ROOT / "helm" / "voxmesh" / "dashboards" / "voxmesh.json"

# PromQL words that are not metric names: functions are recognised by the "("
# after them; these are the keywords and aggregation modifiers.
_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
}


def exported_metric_names() -> set[str]:
    """Every sample name voxmesh.metrics and the edges' metrics register, read from the registry (with suffixes)."""
    import importlib

    import prometheus_client

    # Importing registers the collectors: the services', and each edge's (its own /metrics port).
    for module in ("voxmesh.metrics", "voxmesh.realtime.metrics", "voxmesh.telephony.metrics"):
        importlib.import_module(module)

    names: set[str] = set()
    for family in prometheus_client.REGISTRY.collect():
        if not family.name.startswith("voxmesh_"):
            continue
        if family.type == "histogram":
            names |= {f"{family.name}_bucket", f"{family.name}_sum", f"{family.name}_count"}
        elif family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        else:
            names.add(family.name)
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (identifiers that are not functions or keywords)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w$.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    out = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            out.extend(t["expr"] for t in panel.get("targets", []) if "expr" in t)
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var.get("query")
            out.append(query["query"] if isinstance(query, dict) else query)
    return out


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def test_metric_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, stage) (rate(voxmesh_stage_latency_seconds_bucket{stage="x"}'
        "[$__rate_interval]))) / on (job) group_left foo_total offset 5m"
    )
    assert metric_names(expr) == {"voxmesh_stage_latency_seconds_bucket", "foo_total"}


def test_exported_names_come_from_the_registry() -> None:
    names = exported_metric_names()
    assert "voxmesh_voice_to_voice_seconds_bucket" in names
    assert "voxmesh_turns_total" in names
    assert "voxmesh_active_sessions" in names


def test_dashboard_is_a_grafana_dashboard(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "voxmesh"
    assert dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    assert any(
        v["name"] == "datasource" and v["type"] == "datasource" for v in dashboard["templating"]["list"]
    )


def test_every_queried_metric_is_exported(dashboard: dict[str, Any]) -> None:
    exported = exported_metric_names()
    used: set[str] = set()
    for expr in _exprs(dashboard):
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        unknown = names - exported
        assert not unknown, f"{expr!r} uses {sorted(unknown)}, not exported by voxmesh.metrics"
        used |= names
    # The panels the dashboard promises.
    for needed in (
        "voxmesh_voice_to_voice_seconds_bucket",
        "voxmesh_response_latency_seconds_bucket",
        "voxmesh_stage_latency_seconds_bucket",
        "voxmesh_stage_latency_seconds_sum",
        "voxmesh_active_sessions",
        "voxmesh_turns_total",
        "voxmesh_interruptions_total",
        "voxmesh_errors_total",
        "voxmesh_synthesis_real_time_factor_bucket",
        "voxmesh_telephony_calls",
        "voxmesh_telephony_voice_to_voice_seconds_bucket",
    ):
        assert needed in used, needed


def test_latency_panels_show_p50_p95_p99(dashboard: dict[str, Any]) -> None:
    for metric in ("voxmesh_voice_to_voice_seconds_bucket", "voxmesh_response_latency_seconds_bucket"):
        quantiles = {
            m.group(1)
            for expr in _exprs(dashboard)
            if metric in expr
            for m in [re.match(r"histogram_quantile\(([\d.]+),", expr)]
            if m
        }
        assert {"0.5", "0.95", "0.99"} <= quantiles, metric


def test_stage_breakdown_is_stacked(dashboard: dict[str, Any]) -> None:
    stacked = [
        p
        for p in dashboard["panels"]
        if p.get("fieldConfig", {}).get("defaults", {}).get("custom", {}).get("stacking", {}).get("mode")
        == "normal"
        and any("voxmesh_stage_latency_seconds" in t["expr"] for t in p["targets"])
    ]
    assert stacked, "no stacked per-stage latency panel"


def test_chart_copy_is_identical() -> None:
    assert CHART_COPY.read_bytes() == DASHBOARD.read_bytes(), (
        "helm/voxmesh/dashboards/voxmesh.json differs from dashboards/voxmesh.json: "
        "cp dashboards/voxmesh.json helm/voxmesh/dashboards/voxmesh.json"
    )
