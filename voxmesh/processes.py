"""Start voxmesh services as child processes and wait until they serve.

Used by ``voxmesh up``, by the integration tests and by the benchmarks, so
all three run the services exactly as a user does: ``voxmesh serve NAME``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_health(address: str, timeout_s: float = 1.0, service: str = "") -> str:
    """The health status name of a server ("SERVING", "NOT_SERVING", or "UNREACHABLE")."""
    try:
        with grpc.insecure_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
            )
            return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
    except grpc.RpcError:
        return "UNREACHABLE"


class ServiceDied(RuntimeError):
    """A service exited before it reported SERVING; ``returncode`` says why (voxmesh.exit_status)."""

    def __init__(self, service: ServiceProcess, reason: str) -> None:
        super().__init__(f"{service.name} {reason} before serving:\n{service.log_tail()}")
        self.service = service
        self.returncode = service.returncode


@dataclass
class ServiceProcess:
    """One ``voxmesh serve NAME`` child process."""

    name: str
    port: int
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None
    #: One log per service for its whole life: a restart appends to it.
    log_path: str = ""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> ServiceProcess:
        cmd = [sys.executable, "-m", "voxmesh.cli", "serve", self.name, "--port", str(self.port), *self.args]
        if not self.log_path:
            fd, self.log_path = tempfile.mkstemp(prefix=f"voxmesh-{self.name}-", suffix=".log")
            os.close(fd)
        self.kill_group()
        with open(self.log_path, "ab") as log:
            if self.process is not None:
                log.write(
                    f"--- {self.name} restarted (the last run {self.exit_reason() or 'was stopped'}) ---\n".encode()
                )
                log.flush()
            # New process group: Ctrl-C in a terminal reaches `voxmesh up`, which
            # then stops each child in order instead of all dying at once.
            self.process = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        return self

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path:
            return ""
        with open(self.log_path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")

    @property
    def returncode(self) -> int | None:
        """The exit status (negative: killed by that signal); None while running or never started."""
        return None if self.process is None else self.process.poll()

    def exit_reason(self) -> str | None:
        """None while running; else how it ended."""
        if self.process is None or self.process.poll() is None:
            return None
        code = self.process.returncode
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exited with status {code}"

    def wait_serving(self, timeout_s: float = 120.0) -> None:
        """Block until the health service answers SERVING; raise with the log tail if it dies first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if reason := self.exit_reason():
                raise ServiceDied(self, reason)
            if check_health(self.address, timeout_s=0.5) == "SERVING":
                return
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not SERVING after {timeout_s:.0f} s:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 15.0) -> str:
        """SIGTERM, wait for the drain, SIGKILL if it hangs; safe to call twice."""
        if self.process is None:
            return "not started"
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.kill_group()
        return self.exit_reason() or "stopped"

    def kill_group(self) -> None:
        """SIGKILL whatever is left of an exited service's process group.

        A service killed with -9 leaves its own children running (the echo
        engine's pocketsphinx workers; on a GPU, vLLM's engine core, which
        holds the card's memory a restarted service needs).
        """
        if self.process is None or self.process.poll() is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            # start_new_session made the service the leader: its pid is the group id.
            os.killpg(self.process.pid, signal.SIGKILL)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
