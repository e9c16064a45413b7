"""Scan jobs as users manage them (create, list, pause, delete) and the retry schedule of a
failing job.

A new job is due at once. Pausing or deleting takes effect at the next claim; a run in flight
when its job is deleted cannot write anything (its fenced write finds no row, lease.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.scanner import SERVICE, repository
from services.scanner.outcomes import MarketOutcome
from services.scanner.repository import Row
from shared import audit
from shared.db import Database
from shared.errors import NotFound


@dataclass(frozen=True)
class ScanJob:
    """One recurring scan of some markets for one user."""

    job_id: str
    user_id: str
    markets: tuple[str, ...]
    interval: timedelta
    analyst: str  # rules | llm
    paused: bool
    next_run_at: datetime
    attempts: int
    last_error: str
    last_run_at: datetime | None
    fencing_token: int
    created_at: datetime
    locked_by: str | None
    lock_expires_at: datetime | None
    last_outcomes: tuple[MarketOutcome, ...]
    keep_proposing: bool  # analyse and propose even while the user's trading is off

    @classmethod
    def from_row(cls, row: Row) -> ScanJob:
        return cls(
            job_id=row["job_id"],
            user_id=row["user_id"],
            markets=tuple(row["markets"]),
            interval=timedelta(seconds=row["interval_seconds"]),
            analyst=row["analyst"],
            paused=row["paused"],
            next_run_at=row["next_run_at"],
            attempts=row["attempts"],
            last_error=row["last_error"],
            last_run_at=row["last_run_at"],
            fencing_token=row["fencing_token"],
            created_at=row["created_at"],
            locked_by=row["locked_by"],
            lock_expires_at=row["lock_expires_at"],
            last_outcomes=tuple(MarketOutcome.from_json(o) for o in row["last_outcomes"] if isinstance(o, dict)),
            keep_proposing=bool(row["keep_proposing"]),
        )


def retry_delay(attempts: int, base_seconds: float, max_seconds: float) -> timedelta:
    """Back-off after ``attempts`` consecutive failures: base, 2×base, 4×base … at most max."""
    exponent = min(max(attempts - 1, 0), 30)
    return timedelta(seconds=min(base_seconds * (2**exponent), max_seconds))


class ScanJobs:
    """A user's scan jobs."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        user_id: str,
        markets: Sequence[str],
        interval: timedelta,
        analyst: str,
        *,
        principal: str,
        keep_proposing: bool = False,
    ) -> ScanJob:
        with self._db.transaction(user_id) as conn:
            row = repository.insert_job(
                conn,
                job_id=str(uuid.uuid4()),
                user_id=user_id,
                markets=markets,
                interval_seconds=int(interval.total_seconds()),
                analyst=analyst,
                keep_proposing=keep_proposing,
            )
            job = ScanJob.from_row(row)
            audit.append(
                conn,
                service=SERVICE,
                kind="scan_job.created",
                subject_id=job.job_id,
                principal=principal,
                payload={
                    "markets": list(job.markets),
                    "interval_seconds": row["interval_seconds"],
                    "analyst": analyst,
                    "keep_proposing": keep_proposing,
                },
            )
        return job

    def get(self, user_id: str, job_id: str) -> ScanJob:
        with self._db.transaction(user_id) as conn:
            row = repository.get_job(conn, job_id)
        if row is None:
            raise NotFound("scan_job", job_id, reason="SCAN_JOB_NOT_FOUND")
        return ScanJob.from_row(row)

    def list(self, user_id: str, *, after: tuple[datetime, str] | None, limit: int) -> list[ScanJob]:
        with self._db.transaction(user_id) as conn:
            rows = repository.list_jobs(conn, after=after, limit=limit)
        return [ScanJob.from_row(r) for r in rows]

    def pause(self, user_id: str, job_id: str, paused: bool, *, principal: str) -> ScanJob:
        with self._db.transaction(user_id) as conn:
            row = repository.set_paused(conn, job_id, paused)
            if row is None:
                raise NotFound("scan_job", job_id, reason="SCAN_JOB_NOT_FOUND")
            audit.append(
                conn,
                service=SERVICE,
                kind="scan_job.paused" if paused else "scan_job.resumed",
                subject_id=job_id,
                principal=principal,
            )
        return ScanJob.from_row(row)

    def delete(self, user_id: str, job_id: str, *, principal: str) -> None:
        with self._db.transaction(user_id) as conn:
            if not repository.delete_job(conn, job_id):
                raise NotFound("scan_job", job_id, reason="SCAN_JOB_NOT_FOUND")
            audit.append(conn, service=SERVICE, kind="scan_job.deleted", subject_id=job_id, principal=principal)
