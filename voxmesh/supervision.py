"""``voxmesh up`` keeps its services running: one that dies is restarted in place.

In one container (a RunPod pod) nothing else restarts a crashed stage, so the
mesh does what compose's ``restart: unless-stopped`` does: the service comes
back on the same port after a backoff (1 s, doubling to 30 s), and the
gateway's sessions see an ``Error`` naming the stage, then recover, as they do
under compose. A service that dies ``max_restarts`` times within
``window_s`` is crash-looping: ``voxmesh up`` gives up with its log tail and
exits non-zero. An exit status that no restart can fix (bad settings, a model
that cannot be loaded: :data:`voxmesh.exit_status.PERMANENT`) is given up on
at once.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from voxmesh.exit_status import PERMANENT, ExitStatus
from voxmesh.processes import ServiceProcess


@dataclass(frozen=True)
class RestartPolicy:
    first_backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    #: Restarts allowed within ``window_s``; the next death gives up.
    max_restarts: int = 5
    window_s: float = 300.0

    def backoff_s(self, recent_restarts: int) -> float:
        return min(self.first_backoff_s * 2**recent_restarts, self.max_backoff_s)


@dataclass(frozen=True)
class GiveUp:
    """Why supervision ended: the service, what happened, and ``voxmesh up``'s exit status."""

    service: ServiceProcess
    reason: str
    status: int


@dataclass
class _Watched:
    service: ServiceProcess
    #: When recent restarts happened (monotonic s), oldest first.
    restarts: deque[float] = field(default_factory=deque)
    #: A restart is due at this time (monotonic s); None when running.
    restart_at: float | None = None


class Supervisor:
    """Call :meth:`check` every few hundred ms; it restarts what died, or says to give up."""

    def __init__(
        self,
        services: Sequence[ServiceProcess],
        policy: RestartPolicy,
        say: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self._say = say
        self._clock = clock
        self._watched = [_Watched(svc) for svc in services]

    def check(self) -> GiveUp | None:
        now = self._clock()
        for watched in self._watched:
            svc = watched.service
            if watched.restart_at is not None:
                if now >= watched.restart_at:
                    watched.restart_at = None
                    svc.start()
                    self._say(f"{svc.name} restarted (pid {svc.process.pid if svc.process else '?'})")
                continue
            reason = svc.exit_reason()
            if reason is None:
                continue
            svc.kill_group()  # its orphaned children now, not at the restart: they may hold the GPU
            if (code := svc.returncode) in PERMANENT:
                why = ExitStatus(code).name.lower().replace("_", " ")
                return GiveUp(svc, f"{reason} ({why}: a restart cannot fix it)", code)
            while watched.restarts and now - watched.restarts[0] > self.policy.window_s:
                watched.restarts.popleft()
            recent = len(watched.restarts)
            if recent >= self.policy.max_restarts:
                return GiveUp(
                    svc,
                    f"{reason}; giving up after {recent} restarts within {self.policy.window_s:g} s",
                    ExitStatus.FAILED,
                )
            delay = self.policy.backoff_s(recent)
            watched.restarts.append(now)
            watched.restart_at = now + delay
            self._say(
                f"{svc.name} {reason}; restarting it in {delay:g} s "
                f"(restart {recent + 1} of {self.policy.max_restarts} allowed within {self.policy.window_s:g} s)"
            )
        return None
