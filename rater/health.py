"""Liveness and readiness of ``rater run``, as the job reports them to ``/healthz`` and ``/readyz``.

The streaming job updates one :class:`Health` (the module's :data:`HEALTH`) as it goes: the
loop turned, partitions were assigned, their state restored, the broker answered or went
away. The HTTP endpoints (:mod:`rater.endpoints`) only read it.

- **live** (``/healthz``): the job's loop turned within the last ``stall_s`` seconds. A job
  stuck in a client call that never returns stops turning; the orchestrator restarts it.
- **ready** (``/readyz``): the consumer has an assignment, the state of every assigned
  partition is restored, and the broker is reachable. A member given no partition (more
  members than partitions) is ready: it has nothing to restore.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["HEALTH", "Health", "Verdict"]


@dataclass(frozen=True)
class Verdict:
    """Whether a check passes, and one line saying why."""

    ok: bool
    detail: str


class Health:
    """What the job last said about itself; safe to read from another thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, stall_s: float = 300.0) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.stall_s = stall_s
        self._turned_at = clock()
        self._assigned: frozenset[int] | None = None  # None: no assignment yet
        self._restored = False
        self._broker_error: str | None = "not connected yet"
        self._stopping = False

    # -- what the job reports --------------------------------------------------------------

    def turned(self) -> None:
        """The loop made progress (a poll returned, a batch committed, a back-off step)."""
        with self._lock:
            self._turned_at = self._clock()

    def assigning(self, partitions: list[int]) -> None:
        """Partitions were assigned; their state is being restored."""
        with self._lock:
            self._assigned = frozenset(partitions)
            self._restored = False
            self._turned_at = self._clock()

    def restored(self) -> None:
        """The state of every assigned partition is restored: batches can be rated."""
        with self._lock:
            self._restored = True
            self._turned_at = self._clock()

    def unassigned(self) -> None:
        """The assignment was revoked or lost (a rebalance, or new clients)."""
        with self._lock:
            self._assigned = None
            self._restored = False

    def broker_ok(self) -> None:
        with self._lock:
            self._broker_error = None

    def broker_down(self, why: str) -> None:
        with self._lock:
            self._broker_error = why

    def stopping(self) -> None:
        """Shutting down: not ready any more (still live while it finishes its batch)."""
        with self._lock:
            self._stopping = True

    def configure(self, stall_s: float) -> None:
        with self._lock:
            self.stall_s = stall_s
            self._turned_at = self._clock()

    # -- what the endpoints read -----------------------------------------------------------

    def live(self) -> Verdict:
        with self._lock:
            idle = self._clock() - self._turned_at
            stall = self.stall_s
        if idle > stall:
            return Verdict(
                False, f"stalled: the loop has not turned for {idle:.0f}s (> {stall:g}s)"
            )
        return Verdict(True, f"ok: the loop turned {idle:.1f}s ago")

    def ready(self) -> Verdict:
        with self._lock:
            assigned, restored = self._assigned, self._restored
            broker_error, stopping = self._broker_error, self._stopping
        if stopping:
            return Verdict(False, "stopping")
        if broker_error is not None:
            return Verdict(False, f"broker unreachable: {broker_error}")
        if assigned is None:
            return Verdict(False, "waiting for a partition assignment")
        if not restored:
            return Verdict(False, f"restoring the state of {len(assigned)} partitions")
        return Verdict(True, f"ok: {len(assigned)} partitions assigned and restored")


HEALTH = Health()
