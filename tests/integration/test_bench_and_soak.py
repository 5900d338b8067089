"""`voxmesh bench` end to end, and a short soak: no errors and no memory growth over repeated turns.

Nothing here asserts a latency: figures are printed by the benchmarks and
recorded in BENCHMARKS.md, never checked against a threshold in tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from voxmesh.bench import run_level
from voxmesh.mesh import Mesh

#: Resident memory a service may gain over the soak, once warmed up. A leak
#: of one reply's audio per turn (~100 KB) over the soak's ~20 turns would
#: stay under this; what it catches is per-turn state that is never freed
#: (decoders, sessions, queues), which grows by megabytes a turn.
MAX_GROWTH_MB = 25


def test_bench_cli_writes_figures_and_a_plot(tmp_path: Path) -> None:
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    run = subprocess.run(
        [sys.executable, "-m", "voxmesh.cli", "bench", "--spawn", "null", "--sessions", "1,2", "--turns", "2",
         "--json", str(out), "--plot", str(png)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(out.read_text())
    assert [lv["sessions"] for lv in report["levels"]] == [1, 2]
    for level in report["levels"]:
        assert level["turns_completed"] == 2 * level["sessions"] and not level["errors"]
        for stage, figures in level["latency_ms"].items():
            assert figures["n"] == level["turns_completed"], stage
            assert figures["p50"] <= figures["p95"] <= figures["p99"], stage
        assert set(level["processes"]) == {"vad", "voxtral", "orpheus", "gateway"}
    assert "response_latency" in run.stdout and png.stat().st_size > 10_000


async def test_short_soak_has_no_errors_and_no_memory_growth() -> None:
    mesh = Mesh.build({"voxtral": "echo", "orpheus": "espeak"})
    mesh.start(120)
    try:
        pids = {svc.name: svc.process.pid for svc in mesh.services if svc.process}
        # Warm-up: decoders, caches and allocator pools reach their steady size.
        await run_level(mesh.gateway.address, 3, 2, False, None, None, lambda: None)
        soak = await run_level(mesh.gateway.address, 3, 0, False, None, pids, lambda: None, duration_s=30)
    finally:
        mesh.stop()
    assert not soak["errors"], soak["errors"]
    assert soak["turns_completed"] >= 6
    growth = {name: p["rss_mb_peak"] - p["rss_mb_start"] for name, p in soak["processes"].items()}
    assert all(mb < MAX_GROWTH_MB for mb in growth.values()), growth
