"""Leases and fencing (docs/design.md#scheduler-leases-and-fencing) under a storm: four scanner instances, each with its own connection pool, claim
200 due jobs at once, twice (two due times), while the shared clock races ahead twenty times faster
than real time so leases (5 s, a quarter second of real time) run out whenever a heartbeat is late.

Takeovers are forced, not hoped for: in the first round instance 0 claims its batch alone and then
stalls — every analysis blocks and its heartbeat is stopped (a process-wide pause: GC, SIGSTOP, a
partition) — until the other three instances have taken over and completed every job, its batch
included. Then it wakes, tries to write its stale runs, and must be refused by the fence. The
second round runs all four normally (instance 0's heartbeat back on).

Every run is recorded by the audit trail with its instance, fencing token, due time, start and end;
the check reads that record, not the scanner's answers: each job ran exactly once per due time,
never twice at the same time, every stalled job was completed by another instance under a newer
token, and more claims were made than runs completed.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import pytest

from services.scanner.analyst import RuleAnalyst
from tests.harness import Postgres, new_user_id
from tests.integration.scanner.kit import (
    MARKETS,
    GatedAnalyst,
    assembled,
    at,
    insert_due_job,
    rows,
    running_exchange,
    scan_runs,
    seed_policy,
)
from tests.support.database_clock import DatabaseClock

pytestmark = pytest.mark.stress

INSTANCES = 4
USERS = 50
JOBS_PER_USER = 4
ROUNDS = 2
LEASE_SECONDS = 5
INTERVAL_SECONDS = 3600
BATCH = 10
ROUND_SECONDS = 90
STALLER = "storm-0"


class RacingClock:
    """Moves the database's clock 1 s every 50 ms of real time (20x) while running."""

    def __init__(self, clock: DatabaseClock) -> None:
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.clock.advance(timedelta(seconds=1))

    def __enter__(self) -> RacingClock:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def all_ran_after(postgres: Postgres, moment: datetime) -> bool:
    """Every job was rescheduled past ``moment`` (i.e. its run for this due time completed)."""
    left = rows(postgres, "SELECT count(*) AS n FROM oracle.scan_jobs WHERE next_run_at <= %s", moment)
    return int(left[0]["n"]) == 0


@pytest.fixture
def storm_db(private_postgres: Postgres) -> Iterator[Postgres]:
    yield private_postgres


def test_four_instances_process_each_job_exactly_once_per_due_time(storm_db: Postgres) -> None:
    pg = storm_db
    clock = DatabaseClock(pg.admin_url, datetime(2031, 5, 1, 12, 0, tzinfo=UTC))
    start = clock.now()
    job_ids = []
    for u in range(USERS):
        user = new_user_id(f"storm{u}")
        seed_policy(pg, user)
        for j in range(JOBS_PER_USER):
            markets = [MARKETS[(u + j) % len(MARKETS)], MARKETS[(u + j + 1) % len(MARKETS)]]
            job_ids.append(insert_due_job(pg, user, markets, due=start, interval_s=INTERVAL_SECONDS))

    stall = GatedAnalyst(RuleAnalyst(), timeout=2 * ROUND_SECONDS)
    stalled: dict[str, int] = {}  # job -> the staller's fencing token on it
    with running_exchange() as exchange, ExitStack() as stack:
        exchange.trend_up("BTC-EUR")  # some runs write proposals, under the fence
        stack.callback(stall.release.set)  # whatever happens, no thread stays stalled
        scanners = [
            stack.enter_context(
                assembled(
                    pg,
                    exchange.url,
                    clock,
                    analysts={"rules": stall} if i == 0 else None,
                    instance_id=f"storm-{i}",
                    lease_seconds=str(LEASE_SECONDS),
                    heartbeat_interval_seconds="0.2",
                    claim_batch_size=str(BATCH),
                    job_concurrency="2",
                    db_pool_max="4",
                )
            )
            for i in range(INSTANCES)
        ]
        for scanner in scanners[1:]:
            scanner.heartbeat.start()  # the staller's stays stopped until it wakes

        due = start
        with RacingClock(clock):
            for round_no in range(ROUNDS):
                deadline = time.monotonic() + ROUND_SECONDS
                done = threading.Event()

                # This round's event and deadline, bound now: a thread that outlived its join must
                # not pick up the next round's and keep running beside that round's threads.
                def work(index: int, done: threading.Event = done, deadline: float = deadline) -> None:
                    while not done.is_set() and time.monotonic() < deadline:
                        if scanners[index].scheduler.run_once() == 0:
                            time.sleep(0.02)

                threads = [threading.Thread(target=work, args=(i,)) for i in range(INSTANCES)]
                if round_no == 0:
                    threads[0].start()  # the staller claims first, alone, and stalls in its first analysis
                    assert stall.entered.wait(30), "instance 0 never claimed and ran a job"
                    found = rows(
                        pg,
                        "SELECT job_id::text AS job_id, fencing_token FROM oracle.scan_jobs WHERE locked_by = %s",
                        STALLER,
                    )
                    stalled = {str(r["job_id"]): int(r["fencing_token"]) for r in found}
                    assert len(stalled) == BATCH
                    for thread in threads[1:]:
                        thread.start()
                else:
                    for thread in threads:
                        thread.start()
                while time.monotonic() < deadline and not all_ran_after(pg, due):
                    time.sleep(0.1)
                if round_no == 0:
                    stall.release.set()  # the staller wakes up: its runs must write nothing
                    scanners[0].heartbeat.start()
                done.set()
                for thread in threads:
                    thread.join(60)
                assert all_ran_after(pg, due), "some due jobs were never processed"
                latest = rows(pg, "SELECT max(next_run_at) AS t FROM oracle.scan_jobs")[0]["t"]
                due = latest + timedelta(seconds=1)
                clock.set(due)  # the next due time for every job

    runs = [r for r in scan_runs(pg) if r["job_id"] in set(job_ids)]
    by_job: dict[str, list[dict[str, object]]] = defaultdict(list)
    for run in runs:
        by_job[str(run["job_id"])].append(run)

    assert set(by_job) == set(job_ids), "a job was never processed"
    for job_id, job_runs in by_job.items():
        due_times = [r["due_at"] for r in job_runs]
        assert len(due_times) == ROUNDS, f"job {job_id}: {len(due_times)} runs, {ROUNDS} due times"
        assert len(set(due_times)) == ROUNDS, f"job {job_id} was processed twice for one due time"
        ordered = sorted(job_runs, key=lambda r: at(str(r["started_at"])))
        for earlier, later in itertools.pairwise(ordered):
            assert at(str(later["started_at"])) >= at(str(earlier["finished_at"])), f"job {job_id}: runs overlap"
        tokens = [int(str(r["fencing_token"])) for r in ordered]
        assert tokens == sorted(set(tokens)), f"job {job_id}: fencing tokens not increasing"

    # every proposal was written by a run that completed, under that run's token
    completed = {(str(r["job_id"]), int(str(r["fencing_token"]))) for r in runs}
    proposals = rows(pg, "SELECT job_id::text AS job_id, fencing_token FROM oracle.trade_proposals")
    assert proposals, "the storm wrote no proposal at all: the fence was not exercised on writes"
    assert {(p["job_id"], p["fencing_token"]) for p in proposals} <= completed, "a zombie wrote a proposal"

    # the stalled batch was taken over: each job's first run was another instance's, under a newer token
    for job_id, token in stalled.items():
        (first,) = [r for r in by_job[job_id] if at(str(r["due_at"])) == start]
        assert first["instance"] != STALLER, f"job {job_id}: the stalled instance completed its stale run"
        assert int(str(first["fencing_token"])) > token, f"job {job_id}: completed under the stalled token"

    claims = int(rows(pg, "SELECT sum(fencing_token) AS n FROM oracle.scan_jobs")[0]["n"])
    takeovers = claims - len(runs)  # every claim that did not end in a completed run
    print(f"\n{len(runs)} runs recorded, {claims} claims made ({takeovers} leases taken over)")
    assert claims > len(runs), "no lease was ever taken over: the storm did not exercise the fence"
    assert takeovers >= len(stalled)
