"""Leases on scan jobs and the fencing check: all of docs/design.md#scheduler-leases-and-fencing lives here.

A claim (``oracle.claim_due_scan_jobs`` across users, ``oracle.claim_scan_job`` for one named
job; both take the lease through ``oracle.lease_scan_jobs``, the lease rule's one home) sets
``locked_by`` and ``lock_expires_at`` and increments the job's fencing token; the claim returns
the claimed row with its new token, which this instance then holds as its :class:`Lease` (with
the job as the claim saw it, so a run does not lock the row again just to read it). An expired
lease is claimable again, so a crashed instance's jobs come back without any cleanup step.

Every write a job makes — heartbeat, proposals, rescheduling, failure count, release — happens
inside :meth:`Fence.write`: a transaction for the job's user that first locks the job row
``WHERE job_id = … AND fencing_token = <mine> FOR UPDATE`` and raises :class:`LeaseLost`, writing
nothing, when no row comes back. An instance whose lease expired and was re-claimed (a zombie:
paused, partitioned, slow) therefore cannot write anything for that job, however late it wakes.

:class:`Heartbeat` keeps the leases of running jobs alive from a background thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from services.scanner import metrics, repository
from services.scanner.jobs import ScanJob
from services.scanner.repository import Row
from shared.db import Conn, Database
from shared.errors import OracleError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lease:
    """This instance's claim on one job: valid while the job's fencing token is still ``fencing_token``."""

    job_id: str
    user_id: str
    fencing_token: int
    instance: str
    lost: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)
    job: ScanJob | None = field(default=None, compare=False, repr=False)
    """The job as its claim wrote it (None for a lease rebuilt from its token alone)."""

    @classmethod
    def claimed(cls, row: Row, instance: str) -> Lease:
        """The lease a claim returned ``row`` for."""
        job = ScanJob.from_row(row)
        return cls(job.job_id, job.user_id, job.fencing_token, instance, job=job)


class LeaseLost(Exception):
    """The job was claimed again (or deleted) since this lease was taken: write nothing."""

    def __init__(self, lease: Lease) -> None:
        super().__init__(f"lease on job {lease.job_id} (fencing token {lease.fencing_token}) was lost")
        self.lease = lease


class Fence:
    """The one gate every write of a job passes through."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @contextmanager
    def write(self, lease: Lease) -> Iterator[tuple[Conn, Row]]:
        """A transaction for the job's user holding the job row locked under ``lease``'s token.

        Yields the connection and the locked job row. Raises LeaseLost (rolling back, so
        nothing is written) when the token is no longer the job's.
        """
        with self._db.transaction(lease.user_id) as conn:
            row = repository.lock_job_fenced(conn, job_id=lease.job_id, fencing_token=lease.fencing_token)
            if row is None:
                metrics.fenced_write_refused(first=not lease.lost.is_set())
                lease.lost.set()
                raise LeaseLost(lease)
            yield conn, row


class Leases:
    """Claims jobs for one instance and extends their leases."""

    def __init__(self, db: Database, *, instance: str, lease_seconds: int) -> None:
        self._db = db
        self.instance = instance
        self.lease_seconds = lease_seconds
        self.fence = Fence(db)

    def claim_due(self, limit: int) -> list[Lease]:
        """Claim up to ``limit`` due jobs of any user."""
        with self._db.transaction(None) as conn:
            rows = repository.claim_due_jobs(
                conn, instance=self.instance, limit=limit, lease_seconds=self.lease_seconds
            )
        if rows:  # the claim's time is the database's, as the due times are: the lease's start
            claimed_at = rows[0]["lock_expires_at"] - timedelta(seconds=self.lease_seconds)
            metrics.claimed([r["next_run_at"] for r in rows], claimed_at)
        return [Lease.claimed(r, self.instance) for r in rows]

    def claim(self, user_id: str, job_id: str) -> Lease | None:
        """Claim one job of ``user_id`` now; None when it does not exist or is leased by another."""
        with self._db.transaction(user_id) as conn:
            row = repository.claim_job(conn, job_id=job_id, instance=self.instance, lease_seconds=self.lease_seconds)
        return None if row is None else Lease.claimed(row, self.instance)

    def heartbeat(self, lease: Lease) -> None:
        """Extend ``lease`` by the lease length from now. Raises LeaseLost when it was lost."""
        with self.fence.write(lease) as (conn, row):
            if row["locked_by"] is None:
                return  # already released by its run: nothing to keep alive
            repository.extend_lease(conn, job_id=lease.job_id, lease_seconds=self.lease_seconds)


class Heartbeat:
    """A background thread that heartbeats every lease held by running jobs of this instance."""

    def __init__(self, leases: Leases, interval_seconds: float) -> None:
        self._leases = leases
        self._interval = interval_seconds
        self._held: set[Lease] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def hold(self, lease: Lease) -> Iterator[Lease]:
        """Keep ``lease`` alive for the duration of the block."""
        with self._lock:
            self._held.add(lease)
        try:
            yield lease
        finally:
            with self._lock:
                self._held.discard(lease)

    def beat(self) -> None:
        """Heartbeat every held lease once; a lost one is marked (its job stops writing)."""
        with self._lock:
            held = [lease for lease in self._held if not lease.lost.is_set()]
        for lease in held:
            try:
                self._leases.heartbeat(lease)
            except LeaseLost:
                log.warning("lease lost", extra={"job_id": lease.job_id, "fencing_token": lease.fencing_token})
            except OracleError as exc:
                log.warning("heartbeat failed: %s", exc.reason, extra={"job_id": lease.job_id})

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self._interval):
                self.beat()

        self._thread = threading.Thread(target=loop, name="scanner-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
