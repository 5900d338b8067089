"""The CPU mesh plus ``voxmesh serve telephony`` as real processes, with the metrics ports a test reads."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voxmesh.processes import ServiceProcess, free_port
from voxmesh.realtime.readiness import wait_edge_serving


@dataclass
class PhoneMesh:
    gateway: ServiceProcess
    edge: ServiceProcess
    gateway_metrics: int
    edge_metrics: int

    def url(self, query: str = "", path: str = "/twilio") -> str:
        return f"ws://{self.edge.address}{path}" + (f"?{query}" if query else "")

    def gauge(self, name: str, which: str = "gateway", labels: str = "") -> float:
        """A gauge's value from a /metrics page (summed over label sets matching ``labels``)."""
        port = self.gateway_metrics if which == "gateway" else self.edge_metrics
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        total = 0.0
        for m in re.finditer(rf"^{name}(\{{[^}}]*\}})? ([-+.\deE]+|NaN)$", text, re.M):
            if labels in (m.group(1) or ""):
                total += float(m.group(2))
        return total

    def edge_log(self) -> list[dict[str, Any]]:
        lines = []
        for line in Path(self.edge.log_path).read_text().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines

    def edge_lines(self, msg: str, **fields: object) -> list[dict[str, Any]]:
        """The edge's log lines with message ``msg`` (and these field values)."""
        return [
            line
            for line in self.edge_log()
            if line["msg"] == msg and all(line.get(k) == v for k, v in fields.items())
        ]

    def session_of(self, **call: object) -> object:
        """The gateway session of the one call whose "call started" line has these fields."""
        (started,) = self.edge_lines("call started", **call)
        return started["session_id"]

    def turn_of_key_press(self, session: object, digits: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The "turn complete" line of the turn the session's one key press opened, and all its turns.

        The edge sent the keys as a KeyPress; the gateway's KeyPressed names the turn they opened.
        """
        turns = self.edge_lines("turn complete", session_id=session)
        (pressed,) = self.edge_lines("key pressed", session_id=session)
        assert pressed["digits"] == digits
        (keyed,) = [t for t in turns if t["turn_id"] == pressed["turn_id"]]
        return keyed, turns


@contextmanager
def phone_mesh(edge_args: tuple[str, ...] = ()) -> Iterator[PhoneMesh]:
    """The CPU mesh (vad webrtcvad, voxtral echo, orpheus espeak), a gateway, and the phone edge in front."""
    started: list[ServiceProcess] = []
    try:
        stages = {}
        for name, args in (
            ("vad", []),
            ("voxtral", ["--engine", "echo"]),
            ("orpheus", ["--engine", "espeak"]),
        ):
            stages[name] = ServiceProcess(name, free_port(), [*args, "--metrics-port", "-1"]).start()
            started.append(stages[name])
        for svc in stages.values():
            svc.wait_serving(120)
        addresses = [f"--{name}-addr={svc.address}" for name, svc in stages.items()]
        gateway_metrics, edge_metrics = free_port(), free_port()
        gateway = ServiceProcess("gateway", free_port(), [*addresses, "--metrics-port", str(gateway_metrics)])
        started.append(gateway)
        gateway.start().wait_serving(120)
        edge = ServiceProcess(
            "telephony",
            free_port(),
            ["--gateway", gateway.address, "--metrics-port", str(edge_metrics), *edge_args],
        )
        started.append(edge)
        edge.start()
        wait_edge_serving(edge)
        yield PhoneMesh(gateway, edge, gateway_metrics, edge_metrics)
    finally:
        for svc in reversed(started):
            svc.stop()
