"""What this executor process's reconciler last did: when its last pass ended, what it changed,
and the failures around it — the reconciler health GetOperatorFigures shows an operator.

The reconciler reports through the one-line functions of services/executor/metrics.py (its only
reporting point); those feed the instruments and :data:`HEALTH` alike, so the reconciler itself
knows nothing of this record. It is kept in the process, not the database: each executor replica
reports its own reconciler, and a restarted one starts from nothing. Passes of one process (the
timer's and ReconcileExecutions') share the record; a failure counts towards the next pass to end.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class Snapshot:
    """The record at one moment."""

    last_pass_at: datetime | None = None
    last_pass_duration: timedelta = timedelta(0)
    last_pass_changed: int = 0
    last_pass_failures: int = 0  # failures recorded since the pass before it ended, up to its end
    passes: int = 0
    failures: int = 0
    last_failure_at: datetime | None = None
    last_failure_stage: str = ""


class ReconcilerHealth:
    """The record, safe to update from the reconciler thread and gRPC threads at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = Snapshot()
        self._failures_since_pass = 0

    def passed(self, changed: int, seconds: float) -> None:
        """A pass ended, having moved ``changed`` executions in ``seconds``."""
        with self._lock:
            s = self._state
            self._state = Snapshot(
                last_pass_at=datetime.now(UTC),
                last_pass_duration=timedelta(seconds=seconds),
                last_pass_changed=changed,
                last_pass_failures=self._failures_since_pass,
                passes=s.passes + 1,
                failures=s.failures,
                last_failure_at=s.last_failure_at,
                last_failure_stage=s.last_failure_stage,
            )
            self._failures_since_pass = 0

    def failed(self, stage: str) -> None:
        """Something the reconciler could not do: ``lookup``, ``database`` or the whole ``pass``."""
        with self._lock:
            s = self._state
            self._failures_since_pass += 1
            self._state = Snapshot(
                last_pass_at=s.last_pass_at,
                last_pass_duration=s.last_pass_duration,
                last_pass_changed=s.last_pass_changed,
                last_pass_failures=s.last_pass_failures,
                passes=s.passes,
                failures=s.failures + 1,
                last_failure_at=datetime.now(UTC),
                last_failure_stage=stage,
            )

    def snapshot(self) -> Snapshot:
        """The record as it is now."""
        with self._lock:
            return self._state


HEALTH = ReconcilerHealth()
