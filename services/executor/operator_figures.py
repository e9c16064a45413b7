"""The operator's first figures (GetOperatorFigures): executions whose outcome is not final, per
mode and status, with the oldest one's age; the health of this process's reconciler; and the
exchange weight this process's clients have left.

The executions are read across users through the SECURITY DEFINER function of migration 0091
(counts and a timestamp, never a row of a user) — the same reading the executor's /metrics
serves (services/executor/metrics.py reads it through :func:`not_final` too). The reconciler's
health is the in-process record of services/executor/reconciler_health.py; the weight is what
the exchange's rate-limit headers last said (shared/exchange/sdk.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.executor.reconciler_health import HEALTH, ReconcilerHealth, Snapshot
from services.executor.venue import Venue
from shared.clock import Clock
from shared.db import Database
from shared.exchange.sdk import RateLimitStatus


@dataclass(frozen=True)
class NotFinal:
    """The executions of one mode in one non-final status."""

    mode: str
    status: str
    executions: int
    oldest_updated_at: datetime  # when the one longest in this status got there


def not_final(db: Database) -> list[NotFinal]:
    """Every (mode, status) with at least one execution whose outcome is not final."""
    with db.transaction(None) as conn:
        rows = conn.execute("SELECT * FROM oracle.executions_not_final() ORDER BY mode, status").fetchall()
    return [NotFinal(r["mode"], r["status"], int(r["executions"]), r["oldest_updated_at"]) for r in rows]


@dataclass(frozen=True)
class Figures:
    """The figures at one moment."""

    not_final: list[NotFinal]
    reconciler: Snapshot
    weights: Sequence[tuple[str, RateLimitStatus | None]]
    as_of: datetime


class OperatorFigures:
    """Reads the figures for one executor process."""

    def __init__(self, db: Database, venue: Venue, clock: Clock, health: ReconcilerHealth = HEALTH) -> None:
        self._db = db
        self._venue = venue
        self._clock = clock
        self._health = health

    def read(self) -> Figures:
        return Figures(
            not_final=not_final(self._db),
            reconciler=self._health.snapshot(),
            weights=self._venue.rate_limits(),
            as_of=self._clock.now(),
        )
