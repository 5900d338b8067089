"""What the Grafana dashboard shows, rendered from a real CPU-mesh run into a PNG.

Runs the CPU mesh (vad webrtcvad, voxtral echo, orpheus espeak, gateway) as
real processes with every ``/metrics`` port on, drives simulated users through
the gateway for about a minute (a few load levels, one with barge-in), and
scrapes every service's ``/metrics`` every 2 s, adding the ``component`` label
that Prometheus' scrape config adds (compose and Helm alike). Then each panel
of ``dashboards/voxmesh.json`` is evaluated from those samples with its own
PromQL (a small evaluator for the subset the dashboard uses: selectors,
``rate``, ``sum/max/min/avg by``, ``histogram_quantile``, ``clamp_min`` and
arithmetic) and drawn where Grafana would put it.

    .venv/bin/python bench/dashboard_snapshot.py [--duration 60] [-o docs/img/dashboard.png]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import re
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from voxmesh.bench import run_level
from voxmesh.mesh import DEFAULT_PORTS, Mesh
from voxmesh.processes import free_port

REPO = Path(__file__).resolve().parent.parent

CPU_ENGINES = {"vad": "webrtcvad", "voxtral": "echo", "orpheus": "espeak"}
#: (sessions, turns per session, barge-in): the load levels, run in turn until the time is up.
PHASES = ((1, 2, False), (3, 3, False), (2, 3, True), (4, 2, False))

Labels = frozenset[tuple[str, str]]
Vector = dict[Labels, float]


# ---------------------------------------------------------------- scraping


@dataclass
class Scrapes:
    """Every scrape: (seconds since start, {labels incl. __name__: value})."""

    points: list[tuple[float, Vector]] = field(default_factory=list)

    def save(self, path: Path) -> None:
        data = [[t, [[dict(k), v] for k, v in vector.items()]] for t, vector in self.points]
        path.write_text(json.dumps(data))

    @classmethod
    def load(cls, path: Path) -> Scrapes:
        data = json.loads(path.read_text())
        return cls([(t, {frozenset(k.items()): v for k, v in series}) for t, series in data])

    def scrape(self, t: float, targets: dict[str, int]) -> None:
        vector: Vector = {}
        for component, port in targets.items():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1.5) as reply:
                    text = reply.read().decode()
            except OSError:
                continue  # a service stopping or busy: a gap, as in Prometheus
            for family in text_string_to_metric_families(text):
                for s in family.samples:
                    if s.name.endswith("_created"):
                        continue
                    labels = {**s.labels, "__name__": s.name, "component": component}
                    vector[frozenset(labels.items())] = float(s.value)
        self.points.append((t, vector))


class Scraper(threading.Thread):
    def __init__(self, targets: dict[str, int], interval_s: float) -> None:
        super().__init__(daemon=True)
        self.targets = targets
        self.interval_s = interval_s
        self.scrapes = Scrapes()
        self.started_at = time.perf_counter()
        self._halt = threading.Event()

    def run(self) -> None:
        tick = 0
        while not self._halt.is_set():
            self.scrapes.scrape(time.perf_counter() - self.started_at, self.targets)
            tick += 1
            self._halt.wait(max(0.0, self.started_at + tick * self.interval_s - time.perf_counter()))

    def stop(self) -> None:
        self._halt.set()
        self.join()


# ------------------------------------------------------- a small PromQL


_TOKEN = re.compile(
    r"\s*(?:(?P<duration>\d+(?:ms|s|m|h)\b)|(?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
    r'|(?P<string>"(?:[^"\\]|\\.)*")|(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)'
    r"|(?P<op>=~|!~|!=|[=(){}\[\],+\-*/]))"
)
_AGGREGATIONS = {"sum", "max", "min", "avg", "count"}


def _tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    expr = expr.strip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"cannot parse PromQL at {expr[pos:]!r}")
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _seconds(duration: str) -> float:
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", duration)
    assert m is not None
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


@dataclass
class Selector:
    name: str
    matchers: list[tuple[str, str, str]]
    range_s: float | None = None


# AST nodes are tuples: ("num", v) ("sel", Selector) ("call", name, [args]) ("agg", op, by, expr) ("bin", op, l, r)
Node = tuple[Any, ...]


class _Parser:
    def __init__(self, expr: str) -> None:
        self.toks = _tokens(expr)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise ValueError(f"expected {value!r}, got {tok}")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.expr()
        if self.peek() is not None:
            raise ValueError(f"trailing tokens: {self.toks[self.i :]}")
        return node

    def expr(self) -> Node:
        node = self.term()
        while (tok := self.peek()) is not None and tok[1] in "+-" and tok[0] == "op":
            self.take()
            node = ("bin", tok[1], node, self.term())
        return node

    def term(self) -> Node:
        node = self.unary()
        while (tok := self.peek()) is not None and tok[1] in "*/" and tok[0] == "op":
            self.take()
            node = ("bin", tok[1], node, self.unary())
        return node

    def unary(self) -> Node:
        kind, value = self.take()
        if kind == "number":
            return ("num", float(value))
        if value == "(":
            node = self.expr()
            self.take(")")
            return node
        if value == "-":
            return ("bin", "-", ("num", 0.0), self.unary())
        if kind != "ident":
            raise ValueError(f"unexpected {value!r}")
        if value in _AGGREGATIONS:
            by = self.by_clause()
            self.take("(")
            inner = self.expr()
            self.take(")")
            return ("agg", value, by or self.by_clause(), inner)
        if (tok := self.peek()) is not None and tok[1] == "(":
            self.take("(")
            args = [self.expr()]
            while (tok := self.peek()) is not None and tok[1] == ",":
                self.take(",")
                args.append(self.expr())
            self.take(")")
            return ("call", value, args)
        return ("sel", self.selector(value))

    def by_clause(self) -> list[str] | None:
        if (tok := self.peek()) is None or tok[1] != "by":
            return None
        self.take("by")
        self.take("(")
        labels = []
        while (tok := self.peek()) is not None and tok[1] != ")":
            if tok[1] != ",":
                labels.append(tok[1])
            self.take()
        self.take(")")
        return labels

    def selector(self, name: str) -> Selector:
        sel = Selector(name, [])
        if (tok := self.peek()) is not None and tok[1] == "{":
            self.take("{")
            while (tok := self.peek()) is not None and tok[1] != "}":
                if tok[1] == ",":
                    self.take()
                    continue
                label = self.take()[1]
                op = self.take()[1]
                sel.matchers.append((label, op, json.loads(self.take()[1])))
            self.take("}")
        if (tok := self.peek()) is not None and tok[1] == "[":
            self.take("[")
            sel.range_s = _seconds(self.take()[1])
            self.take("]")
        return sel


def _matches(labels: dict[str, str], matchers: list[tuple[str, str, str]]) -> bool:
    for label, op, value in matchers:
        have = labels.get(label, "")
        ok = {
            "=": have == value,
            "!=": have != value,
            "=~": re.fullmatch(value, have) is not None,
            "!~": re.fullmatch(value, have) is None,
        }[op]
        if not ok:
            return False
    return True


def _without(labels: Labels, *names: str) -> Labels:
    return frozenset((k, v) for k, v in labels if k not in names)


def _div(a: float, b: float) -> float:
    if b == 0:
        return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a)
    return a / b


_BINARY: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": _div,
}


def _histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' bucket interpolation (``buckets``: (upper bound, cumulative count))."""
    buckets = sorted(buckets)
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return math.nan
    counts = np.maximum.accumulate([c for _, c in buckets])
    total = counts[-1]
    if total == 0 or math.isnan(total):
        return math.nan
    rank = q * total
    b = int(np.searchsorted(counts, rank, side="left"))
    if b == len(buckets) - 1:
        return buckets[-2][0]
    start, before = (0.0, 0.0) if b == 0 else (buckets[b - 1][0], counts[b - 1])
    in_bucket = counts[b] - before
    return start + (buckets[b][0] - start) * _div(rank - before, in_bucket)


class Evaluator:
    def __init__(self, scrapes: Scrapes) -> None:
        self.points = scrapes.points

    def at(self, node: Node, i: int) -> float | Vector:
        kind = node[0]
        if kind == "num":
            return float(node[1])
        if kind == "sel":
            sel: Selector = node[1]
            if sel.range_s is not None:
                raise ValueError(f"range vector {sel.name} outside a function")
            return self._instant(sel, i)
        if kind == "call":
            return self._call(node[1], node[2], i)
        if kind == "agg":
            return self._aggregate(node[1], node[2] or [], self._vector(self.at(node[3], i)))
        if kind == "bin":
            return self._binary(node[1], self.at(node[2], i), self.at(node[3], i))
        raise ValueError(node)

    def _instant(self, sel: Selector, i: int) -> Vector:
        matchers = [("__name__", "=", sel.name), *sel.matchers]
        return {k: v for k, v in self.points[i][1].items() if _matches(dict(k), matchers)}

    def _call(self, name: str, args: list[Node], i: int) -> float | Vector:
        if name in ("rate", "increase"):
            sel = args[0][1]
            assert args[0][0] == "sel" and sel.range_s is not None, f"{name} needs a range selector"
            now = self.points[i][0]
            series: dict[Labels, list[tuple[float, float]]] = {}
            for j in range(i + 1):
                t, _ = self.points[j]
                if now - sel.range_s < t <= now:
                    for k, v in self._instant(sel, j).items():
                        series.setdefault(_without(k, "__name__"), []).append((t, v))
            out: Vector = {}
            for k, pts in series.items():
                if len(pts) < 2:
                    continue
                inc = sum(b - a if b >= a else b for (_, a), (_, b) in itertools.pairwise(pts))
                out[k] = inc / (pts[-1][0] - pts[0][0]) if name == "rate" else inc
            return out
        if name == "histogram_quantile":
            q = self.at(args[0], i)
            assert isinstance(q, float)
            groups: dict[Labels, list[tuple[float, float]]] = {}
            for k, v in self._vector(self.at(args[1], i)).items():
                le = dict(k).get("le")
                if le is not None:
                    groups.setdefault(_without(k, "le", "__name__"), []).append((float(le), v))
            return {k: _histogram_quantile(q, b) for k, b in groups.items()}
        if name == "clamp_min":
            floor = self.at(args[1], i)
            assert isinstance(floor, float)
            return {k: max(v, floor) for k, v in self._vector(self.at(args[0], i)).items()}
        raise ValueError(f"PromQL function {name} is not supported here")

    @staticmethod
    def _vector(value: float | Vector) -> Vector:
        if isinstance(value, float):
            raise ValueError("expected an instant vector")
        return value

    @staticmethod
    def _aggregate(op: str, by: list[str], vector: Vector) -> Vector:
        groups: dict[Labels, list[float]] = {}
        for k, v in vector.items():
            groups.setdefault(frozenset((n, x) for n, x in k if n in by), []).append(v)
        reduce: dict[str, Callable[[list[float]], float]] = {
            "sum": lambda vs: float(sum(vs)),
            "max": lambda vs: float(max(vs)),
            "min": lambda vs: float(min(vs)),
            "avg": lambda vs: float(sum(vs)) / len(vs),
            "count": lambda vs: float(len(vs)),
        }
        return {k: reduce[op](vs) for k, vs in groups.items()}

    @staticmethod
    def _binary(op: str, left: float | Vector, right: float | Vector) -> float | Vector:
        fn = _BINARY[op]
        if isinstance(left, float) and isinstance(right, float):
            return fn(left, right)
        if isinstance(right, float):
            assert not isinstance(left, float)
            return {_without(k, "__name__"): fn(v, right) for k, v in left.items()}
        if isinstance(left, float):
            return {_without(k, "__name__"): fn(left, v) for k, v in right.items()}
        rhs = {_without(k, "__name__"): v for k, v in right.items()}
        return {key: fn(v, rhs[key]) for k, v in left.items() if (key := _without(k, "__name__")) in rhs}

    def series(self, expr: str) -> dict[Labels, np.ndarray]:
        """``expr`` at every scrape: one array (NaN where absent) per label set."""
        node = _Parser(expr).parse()
        out: dict[Labels, np.ndarray] = {}
        for i in range(len(self.points)):
            value = self.at(node, i)
            if isinstance(value, float):
                value = {frozenset(): value}
            for k, v in value.items():
                out.setdefault(k, np.full(len(self.points), np.nan))[i] = v
        return out


# --------------------------------------------------------------- drawing

_BG, _PANEL, _TEXT, _GRID = "#111217", "#181b1f", "#ccccdc", "#2c3235"
_COLORS = ("#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#fade2a")


def _substitute(expr: str, rate_window_s: int) -> str:
    expr = re.sub(r"\$\{?__rate_interval\}?", f"{rate_window_s}s", expr)
    return re.sub(r"\$\{?gateway\}?", "gateway", expr)


def _legend(fmt: str, labels: Labels) -> str:
    values = dict(labels)
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: values.get(m.group(1), ""), fmt).strip() or "value"


def _scale(unit: str | None) -> tuple[float, str]:
    """Factor and axis label so values read as Grafana shows them."""
    return {
        "s": (1000.0, "ms"),
        "reqps": (1.0, "/s"),
        "percentunit": (100.0, "%"),
        "bytes": (1 / 2**20, "MiB"),
    }.get(unit or "", (1.0, ""))


def _format(value: float, unit: str | None) -> str:
    factor, suffix = _scale(unit)
    v = value * factor
    if v == int(v) and unit in (None, "short", "none"):
        text = f"{v:.0f}"
    else:
        text = f"{v:.0f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"
    return f"{text} {suffix}".strip() if suffix not in ("%",) else f"{text}%"


def _no_data_note(panel: dict[str, Any]) -> str:
    """Why a panel is empty in this run (Grafana shows just "No data")."""
    exprs = " ".join(t.get("expr", "") for t in panel.get("targets", []))
    if "gpu" in exprs:
        return "\n(no GPU in the CPU mesh)"
    if "errors_total" in exprs:
        return "\n(no errors counted)"
    return ""


def render(dashboard: dict[str, Any], scrapes: Scrapes, out: Path, rate_window_s: int, subtitle: str) -> None:
    evaluator = Evaluator(scrapes)
    times = np.array([t for t, _ in scrapes.points])
    panels = dashboard["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    unit_h = 0.42  # inches per grid row
    top_margin = 0.9
    fig = plt.figure(figsize=(22, rows * unit_h + top_margin), facecolor=_BG)
    height = rows * unit_h + top_margin
    fig.text(
        0.01, 1 - 0.35 / height, dashboard.get("title", "dashboard"), color=_TEXT, fontsize=18, weight="bold"
    )
    fig.text(0.01, 1 - 0.7 / height, subtitle, color="#8e8e8e", fontsize=10)

    width = 22.0

    def box(
        g: dict[str, int], margins: tuple[float, float, float, float]
    ) -> tuple[float, float, float, float]:
        """Figure coordinates of a grid cell inset by (left, right, top, bottom) inches."""
        left, right, top, bottom = margins
        x_in = g["x"] / 24 * width + 0.06
        w_in = g["w"] / 24 * width - 0.12
        top_in = height - top_margin - g["y"] * unit_h - 0.06
        h_in = g["h"] * unit_h - 0.12
        return (
            (x_in + left) / width,
            (top_in - h_in + bottom) / height,
            (w_in - left - right) / width,
            (h_in - top - bottom) / height,
        )

    for panel in panels:
        g = panel["gridPos"]
        if panel["type"] == "row":
            x0, y0, _, h = box(g, (0, 0, 0, 0))
            fig.text(x0, y0 + h / 2, panel["title"], color=_TEXT, fontsize=13, weight="bold", va="center")
            continue
        frame = box(g, (0, 0, 0, 0))
        fig.add_artist(
            plt.Rectangle(frame[:2], frame[2], frame[3], transform=fig.transFigure, color=_PANEL, zorder=-1)
        )
        fig.text(frame[0] + 0.1 / width, frame[1] + frame[3] - 0.22 / height, panel["title"],
                 color=_TEXT, fontsize=10.5, weight="bold", va="center")  # fmt: skip
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        stacking = panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {}).get("stacking", {})
        stacked = stacking.get("mode", "none") != "none"
        lines: list[tuple[str, np.ndarray]] = []
        for target in panel.get("targets", []):
            for labels, values in sorted(
                evaluator.series(_substitute(target["expr"], rate_window_s)).items(),
                key=lambda kv: sorted(kv[0]),
            ):
                lines.append((_legend(target.get("legendFormat", ""), labels), values))
        is_stat = panel["type"] == "stat"
        ax = fig.add_axes(
            box(g, (0.1, 0.1, 0.42, 0.1) if is_stat else (0.7, 0.2, 0.45, 0.4)), facecolor=_PANEL
        )
        for spine in ax.spines.values():
            spine.set_color(_GRID)
        ax.tick_params(colors="#9fa7b3", labelsize=8)
        have = [(name, v) for name, v in lines if np.isfinite(v).any()]
        if is_stat:
            for spine in ax.spines.values():
                spine.set_visible(False)
            ax.set_xticks([])
            ax.set_yticks([])
            if not have:
                ax.text(0.5, 0.45, "No data" + _no_data_note(panel), color="#8e8e8e", fontsize=14,
                        ha="center", va="center", transform=ax.transAxes)  # fmt: skip
                continue
            values = have[0][1]
            last = float(values[np.isfinite(values)][-1])
            ax.plot(times, np.where(np.isfinite(values), values, np.nan), color=_COLORS[0], alpha=0.35, lw=1)
            ax.fill_between(times, np.nan_to_num(values), color=_COLORS[0], alpha=0.08)
            ax.text(0.5, 0.45, _format(last, unit), color=_COLORS[0], fontsize=24, weight="bold",
                    ha="center", va="center", transform=ax.transAxes)  # fmt: skip
            continue
        factor, label = _scale(unit)
        ax.grid(color=_GRID, lw=0.6)
        ax.set_xlim(times[0], times[-1])
        ax.set_ylabel(label, color="#9fa7b3", fontsize=8)
        if not have:
            ax.text(0.5, 0.5, "No data" + _no_data_note(panel), color="#8e8e8e", fontsize=13, ha="center", va="center", transform=ax.transAxes)  # fmt: skip
            continue
        colors = [_COLORS[i % len(_COLORS)] for i in range(len(have))]
        if stacked:
            ys = np.vstack([np.nan_to_num(v) * factor for _, v in have])
            ax.stackplot(times, ys, labels=[n for n, _ in have], colors=colors, alpha=0.55)
        else:
            for (name, v), color in zip(have, colors, strict=True):
                ax.plot(times, v * factor, label=name, color=color, lw=1.6)
        ax.set_ylim(bottom=0)
        ax.legend(
            loc="upper left",
            fontsize=7.5,
            facecolor=_PANEL,
            edgecolor=_GRID,
            labelcolor=_TEXT,
            ncol=min(3, len(have)),
        )
    fig.text(0.99, 0.004, "x axis: seconds since the first scrape", color="#8e8e8e", fontsize=8, ha="right")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80, facecolor=_BG)
    plt.close(fig)


# ------------------------------------------------------------------- run


async def _drive(gateway: str, duration_s: float, log: Callable[[str], None]) -> int:
    """Load levels one after the other until ``duration_s`` is spent; returns turns taken."""
    turns = 0

    def on_turn() -> None:
        nonlocal turns
        turns += 1

    deadline = time.perf_counter() + duration_s
    phase = 0
    while time.perf_counter() < deadline:
        sessions, per_session, barge_in = PHASES[phase % len(PHASES)]
        phase += 1
        log(f"  {sessions} session(s) x {per_session} turn(s){' with barge-in' if barge_in else ''}")
        level = await run_level(gateway, sessions, per_session, barge_in, None, None, on_turn)
        if level["errors"]:
            log(f"  errors: {level['errors'][:3]}")
    return turns


def main() -> None:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--interval", type=float, default=2.0, help="scrape interval, s (default 2)")
    parser.add_argument("--rate-window", type=int, default=20, help="$__rate_interval, s (default 20)")
    parser.add_argument("--dashboard", type=Path, default=REPO / "dashboards" / "voxmesh.json")
    parser.add_argument("-o", "--out", type=Path, default=REPO / "docs" / "img" / "dashboard.png")
    parser.add_argument("--save-samples", type=Path, help="also write the scraped samples (JSON) here")
    parser.add_argument("--from-samples", type=Path, help="render samples saved before; run nothing")
    args = parser.parse_args()

    def log(line: str) -> None:
        print(line, flush=True)

    dashboard = json.loads(args.dashboard.read_text())
    if args.from_samples:
        scrapes = Scrapes.load(args.from_samples)
        render(dashboard, scrapes, args.out, args.rate_window, f"re-rendered from {args.from_samples}")
        log(f"wrote {args.out}")
        return
    metrics_ports = {name: free_port() for name in DEFAULT_PORTS}
    mesh = Mesh.build(CPU_ENGINES, metrics_ports=metrics_ports)
    log("starting the CPU mesh ...")
    mesh.start(timeout_s=120, progress=log)
    scraper = Scraper(metrics_ports, args.interval)
    try:
        scraper.start()
        time.sleep(2 * args.interval)  # an idle baseline first
        turns = asyncio.run(_drive(mesh.gateway.address, args.duration, log))
        time.sleep(3 * args.interval)  # and the sessions closing
    finally:
        scraper.stop()
        mesh.stop(progress=log)
    scrapes = scraper.scrapes
    if args.save_samples:
        scrapes.save(args.save_samples)
    span = scrapes.points[-1][0] - scrapes.points[0][0]
    subtitle = (
        f"CPU mesh (vad webrtcvad, voxtral echo, orpheus espeak), {turns} turns over {span:.0f} s, "
        f"{len(scrapes.points)} scrapes every {args.interval:g} s; $__rate_interval = {args.rate_window} s; "
        f"rendered by bench/dashboard_snapshot.py from each panel's PromQL"
    )
    render(dashboard, scrapes, args.out, args.rate_window, subtitle)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
