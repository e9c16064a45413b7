"""Scheduler leases and fencing (docs/design.md#scheduler-leases-and-fencing) at the scale of one job: leases, heartbeats and the fencing token.

Two scanner instances with their own connection pools share one database, whose clock decides
every lease (migration 0095); lease edges are crossed by moving that clock, never by sleeping.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from services.scanner.analyst import RuleAnalyst
from services.scanner.lease import Lease, LeaseLost
from shared.errors import FailedPrecondition
from tests.harness import Postgres, new_user_id, scrape
from tests.integration.scanner.kit import (
    Exchange,
    GatedAnalyst,
    assembled,
    insert_due_job,
    proposals_of,
    rows,
    scan_runs,
    seed_policy,
)
from tests.support.database_clock import DatabaseClock

LEASE = 60


def job_row(postgres: Postgres, job_id: str) -> dict[str, object]:
    return rows(postgres, "SELECT * FROM oracle.scan_jobs WHERE job_id = %s", job_id)[0]


def test_a_zombie_whose_lease_was_taken_over_writes_nothing(
    private_postgres: Postgres, exchange: Exchange, metrics_port: int
) -> None:
    pg = private_postgres
    before = scrape(metrics_port)
    clock = DatabaseClock(pg.admin_url)  # this test's own database's clock (a cluster of its own)
    user = new_user_id("zombie")
    seed_policy(pg, user)
    exchange.trend_up("BTC-EUR")  # the rule analyst proposes a buy: a write the zombie would make
    job_id = insert_due_job(pg, user, ["BTC-EUR"], due=clock.now())
    gate = GatedAnalyst(RuleAnalyst())
    lease_s = str(LEASE)
    with (
        assembled(
            pg, exchange.url, clock, analysts={"rules": gate}, lease_seconds=lease_s, instance_id="zombie-a"
        ) as a,
        assembled(pg, exchange.url, clock, lease_seconds=lease_s, instance_id="healthy-b") as b,
    ):
        # A claims the job and stalls mid-run (its heartbeat thread is not running: a GC pause,
        # a partition ...). Its lease runs out; B claims the job and completes it.
        zombie = threading.Thread(target=a.scheduler.run_once)
        zombie.start()
        try:
            assert gate.entered.wait(30), "instance A never reached the analyst"
            token_a = job_row(pg, job_id)["fencing_token"]
            assert job_row(pg, job_id)["locked_by"] == "zombie-a"

            clock.advance(timedelta(seconds=LEASE - 1))
            assert b.scheduler.run_once() == 0, "a live lease must not be claimable"
            clock.advance(timedelta(seconds=2))
            assert b.scheduler.run_once() == 1
            token_b = job_row(pg, job_id)["fencing_token"]
            assert token_b == token_a + 1  # type: ignore[operator]
            b_proposals = proposals_of(pg, user)
            assert [p["fencing_token"] for p in b_proposals] == [token_b]
        finally:
            gate.release.set()  # A wakes up and tries to write its results
            zombie.join(30)
        assert not zombie.is_alive()
        assert proposals_of(pg, user) == b_proposals, "the zombie wrote a proposal"
        with pytest.raises(LeaseLost):  # and its heartbeat is refused too
            a.leases.heartbeat(Lease(job_id, user, int(str(token_a)), "zombie-a"))

    runs = [r for r in scan_runs(pg) if r["job_id"] == job_id]
    assert [(r["instance"], r["fencing_token"]) for r in runs] == [("healthy-b", token_b)]
    # The operator sees it: two writes refused by the fence (the zombie's results, its
    # heartbeat), each by a lease not yet known lost, so two takeovers noticed; one lost run.
    after_metrics = scrape(metrics_port)
    for name, added in (
        ("oracle_scanner_fenced_writes_refused_total", 2),
        ("oracle_scanner_lease_takeovers_total", 2),
        ("oracle_scanner_run_duration_seconds_count", 1),
    ):
        labels = {"result": "lease_lost"} if name.startswith("oracle_scanner_run") else {}
        assert after_metrics.value(name, **labels) - before.value(name, **labels) == added, name
    assert scan_runs(pg, "scan.failed") == []
    after = job_row(pg, job_id)
    assert after["fencing_token"] == token_b
    assert after["attempts"] == 0
    assert after["locked_by"] is None
    assert after["next_run_at"] > clock.now()  # type: ignore[operator]


def test_heartbeat_keeps_a_running_job_leased(private_postgres: Postgres, exchange: Exchange) -> None:
    pg = private_postgres
    clock = DatabaseClock(pg.admin_url)
    user = new_user_id("beat")
    seed_policy(pg, user)
    job_id = insert_due_job(pg, user, ["ETH-EUR"], due=clock.now())
    with (
        assembled(pg, exchange.url, clock, lease_seconds=str(LEASE), instance_id="a") as a,
        assembled(pg, exchange.url, clock, lease_seconds=str(LEASE), instance_id="b") as b,
    ):
        (lease,) = a.leases.claim_due(10)
        for _ in range(3):  # three lease lengths pass, each with a heartbeat before it ends
            clock.advance(timedelta(seconds=LEASE - 5))
            a.leases.heartbeat(lease)
            assert b.leases.claim_due(10) == []
        assert job_row(pg, job_id)["lock_expires_at"] == clock.now() + timedelta(seconds=LEASE)
        clock.advance(timedelta(seconds=LEASE))  # no heartbeat: expired, claimable without any cleanup
        (taken,) = b.leases.claim_due(10)
        assert taken.fencing_token == lease.fencing_token + 1
        with pytest.raises(LeaseLost):
            a.leases.heartbeat(lease)
        assert lease.lost.is_set()


def test_run_scan_on_a_leased_job_is_refused(private_postgres: Postgres, exchange: Exchange) -> None:
    pg = private_postgres
    clock = DatabaseClock(pg.admin_url)
    user = new_user_id("busy")
    seed_policy(pg, user)
    job_id = insert_due_job(pg, user, ["ETH-EUR"], due=clock.now())
    with (
        assembled(pg, exchange.url, clock, instance_id="a") as a,
        assembled(pg, exchange.url, clock, instance_id="b") as b,
    ):
        a.leases.claim_due(10)
        with pytest.raises(FailedPrecondition) as refused:
            b.scheduler.run_job_now(user, job_id, principal="operator")
        assert refused.value.reason == "SCAN_JOB_BUSY"
    assert scan_runs(pg) == []


def test_the_lease_rule_is_written_once_in_the_database(postgres: Postgres) -> None:
    """When a lease is free, and what taking one writes, live in one function each; both claims
    (every user's due jobs, and RunScan's one job) go through them."""
    with postgres.admin() as conn:
        sources = dict(
            conn.execute(
                "SELECT p.proname, p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                " WHERE n.nspname = 'oracle'"
            ).fetchall()
        )
    free = [name for name, source in sources.items() if "lock_expires_at IS NULL" in source]
    taken = [name for name, source in sources.items() if "fencing_token = s.fencing_token + 1" in source]
    assert (free, taken) == (["scan_job_lease_free"], ["lease_scan_jobs"])
    for claim in ("claim_due_scan_jobs", "claim_scan_job"):
        assert "oracle.lease_scan_jobs(" in sources[claim]
    assert "oracle.scan_job_lease_free(" in sources["claim_due_scan_jobs"]
