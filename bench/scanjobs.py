"""Benchmark 4: scan-job claims with the fenced finish, at 1 to 8 scanner instances.

Every instance is the project's own claim code (``services.scanner.lease.Leases``, its own
``shared.db.Database`` pool as the scanner role) running in a thread of this process; each task
claims one due job (``claim_due``, limit 1) and finishes it through the fence
(``Fence.write`` then ``repository.finish_job``): reschedule an interval later, release the lease.
The floor does the same with the same SQL issued directly (``oracle.claim_due_scan_jobs`` then one
transaction: the fenced ``SELECT … FOR UPDATE`` and the finishing ``UPDATE``), one connection per
instance.

``jobs`` due jobs are seeded (set-based) once and made due again before every measurement.
Checks: every claimed job was finished exactly once per measurement, and no job is left leased.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from bench.infra import Infra
from bench.load import Outcome, Task, run
from bench.machine import CpuProbe
from bench.results import Check, Scenario
from bench.sizes import Sizes
from services.scanner import repository
from services.scanner.lease import Leases
from shared.clock import SystemClock
from shared.db import Database

LEASE_SECONDS = 60
INTERVAL = timedelta(hours=1)


def seed_jobs(admin_url: str, jobs: int) -> None:
    """``jobs`` scan jobs over 500 users, due now (set-based, as the owner)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO oracle.scan_jobs (job_id, user_id, markets, interval_seconds, analyst, next_run_at,"
            " created_at) SELECT md5('job-' || g)::uuid, 'scan-' || (g %% 500), ARRAY['BTC-EUR'], 3600, 'rules',"
            " now() - interval '1 minute', now() - interval '1 minute' FROM generate_series(1, %s) g",
            (jobs,),
        )
        conn.execute("ANALYZE oracle.scan_jobs")


def make_due(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE oracle.scan_jobs SET next_run_at = now() - interval '1 minute', locked_by = NULL,"
            " lock_expires_at = NULL WHERE user_id LIKE 'scan-%'"
        )


class _Finished:
    """Which jobs were finished, and how many times (the double-claim check)."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, job_id: str) -> None:
        with self._lock:
            self.count[job_id] += 1


def _ours(infra: Infra, instances: int, finished: _Finished) -> tuple[list[Task], Callable[[], None]]:
    clock = SystemClock()
    dbs = [
        Database(infra.role_url("scanner"), name=f"bench-scanner-{i}", min_size=1, max_size=2) for i in range(instances)
    ]
    for db in dbs:
        db.open()
    leases = [Leases(db, instance=f"bench-{instances}-{i}", lease_seconds=LEASE_SECONDS) for i, db in enumerate(dbs)]
    local = threading.local()
    counter = iter(range(1 << 30))
    lock = threading.Lock()

    def mine() -> Leases:
        if not hasattr(local, "leases"):
            with lock:
                local.leases = leases[next(counter) % instances]
        result: Leases = local.leases
        return result

    def task() -> Outcome:
        own = mine()
        claimed = own.claim_due(1)
        if not claimed:
            return Outcome("nothing due")
        lease = claimed[0]
        with own.fence.write(lease) as (conn, _row):
            now = clock.now()
            repository.finish_job(conn, job_id=lease.job_id, interval=INTERVAL, last_run_at=now, outcomes=[])
        finished.add(lease.job_id)
        return Outcome()

    def close() -> None:
        for db in dbs:
            db.close()

    return [task], close


def _floor(infra: Infra, instances: int, finished: _Finished) -> tuple[list[Task], Callable[[], None]]:
    url = infra.role_url("scanner")
    conns = [psycopg.connect(url, autocommit=True) for _ in range(instances)]
    local = threading.local()
    counter = iter(range(1 << 30))
    lock = threading.Lock()

    def mine() -> tuple[psycopg.Connection[Any], str]:
        if not hasattr(local, "conn"):
            with lock:
                k = next(counter) % instances
            local.conn, local.instance = conns[k], f"floor-{instances}-{k}"
        return local.conn, local.instance

    def task() -> Outcome:
        conn, instance = mine()
        row = conn.execute(
            "SELECT job_id::text, user_id, fencing_token FROM oracle.claim_due_scan_jobs(%s, 1, %s)",
            (instance, LEASE_SECONDS),
        ).fetchone()
        if row is None:
            return Outcome("nothing due")
        job_id, user_id, token = row
        with conn.transaction():
            conn.execute("SELECT set_config('app.user_id', %s, true)", (user_id,))
            fenced = conn.execute(
                "SELECT job_id FROM oracle.scan_jobs WHERE job_id = %s AND fencing_token = %s FOR UPDATE",
                (job_id, token),
            ).fetchone()
            if fenced is None:
                return Outcome("lease lost")
            now = datetime.now(UTC)
            conn.execute(
                "UPDATE oracle.scan_jobs SET next_run_at = (SELECT oracle.clock()) + %s, last_run_at = %s,"
                " attempts = 0, last_error = '', last_outcomes = '[]', locked_by = NULL, lock_expires_at = NULL"
                " WHERE job_id = %s",
                (INTERVAL, now, job_id),
            )
        finished.add(job_id)
        return Outcome()

    def close() -> None:
        for conn in conns:
            conn.close()

    return [task], close


def run_scan_claims(
    infra: Infra, sizes: Sizes, *, history: int, into: list[Scenario], stop: threading.Event, say: Callable[[str], None]
) -> None:
    """Ours and the floor at each instance count of ``sizes.scan_instances``."""
    say(f"scan jobs: seeding {sizes.scan_jobs:,} due jobs")
    seed_jobs(infra.admin_url, sizes.scan_jobs)
    for instances in sizes.scan_instances:
        for kind, build in (("service", _ours), ("floor", _floor)):
            if stop.is_set():
                return
            make_due(infra.admin_url)
            finished = _Finished()
            single, close = build(infra, instances, finished)
            say(f"scan-job claims ({kind}): {sizes.scan_jobs:,} jobs, {instances} instance(s)")
            probe = CpuProbe({"postgres": infra.postgres_cpu_seconds})
            probe.start()
            try:
                tasks = single * sizes.scan_jobs
                measured = run(tasks, threads=instances, deadline_seconds=sizes.scan_deadline_seconds, stop=stop)
            finally:
                close()
            cpu = probe.stop()
            doubles = sum(1 for n in finished.count.values() if n > 1)
            into.append(
                Scenario(
                    benchmark="scan-claims",
                    name=f"{instances} instance(s)",
                    unit="job",
                    parameters={
                        "instances": instances,
                        "jobs": sizes.scan_jobs,
                        "claim_limit": 1,
                        "lease_seconds": LEASE_SECONDS,
                        "code": "services.scanner.lease" if kind == "service" else "bench/scanjobs.py (SQL)",
                    },
                    summary=measured.summary(),
                    checks=[
                        Check("no failed task", 0, sum(measured.failures.values())),
                        Check("jobs finished more than once", 0, doubles),
                        Check("jobs left leased", 0, _leased(infra.admin_url)),
                    ],
                    cpu=cpu,
                    history=history,
                    kind=kind,
                )
            )


def _leased(admin_url: str) -> int:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM oracle.scan_jobs WHERE user_id LIKE 'scan-%' AND locked_by IS NOT NULL"
        ).fetchone()
    return int(row[0]) if row else 0
