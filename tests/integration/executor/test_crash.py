"""Crash recovery: an executor killed with SIGKILL right after its claim committed (as SUBMITTING,
before the order was signed), or right after the exchange accepted the order, is settled by a new
instance's reconciliation, with at most one order each at the exchange.

The crashing process is the test-only entry point tests/support/executor_with_hooks.py: the
executor built with a hook that SIGKILLs it at the chosen point.
"""

from __future__ import annotations

from pathlib import Path

import grpc

from tests.harness import Postgres, eventually
from tests.integration.executor.kit import (
    Exchange,
    executions,
    failure,
    process_executor,
    seed_proposal,
    user,
)

# The kit's timings: access window 1 s + safety margin 0.5 s after the signing deadline.
ABSENT_AFTER_DEADLINE_MS = 1_500


def _status(postgres: Postgres, uid: str) -> str:
    rows = executions(postgres, uid)
    assert len(rows) == 1
    return str(rows[0]["status"])


def test_killed_after_the_claim_nothing_is_sent_and_absence_is_proven_past_the_deadline(
    postgres: Postgres, exchange: Exchange, tmp_path: Path
) -> None:
    uid = user()
    pid = seed_proposal(postgres, uid, price=exchange.price("BTC-EUR"))
    with process_executor(postgres, exchange.url, tmp_path / "a.log", crash_at="before_send") as (ex, proc):
        ex.set_policy(uid)
        report = failure(lambda: ex.execute(uid, pid))
        assert report.code is grpc.StatusCode.UNAVAILABLE
        assert proc.proc.wait(10) == -9
    [row] = executions(postgres, uid)
    assert row["status"] == "SUBMITTING"  # committed before anything could leave
    assert exchange.post_count() == 0

    # From here a crash before the send looks like a lost answer: only the exchange's clock past
    # the signing deadline + access window + margin, with every lookup clean, proves absence.
    with process_executor(postgres, exchange.url, tmp_path / "b.log") as (ex, _):
        ex.reconcile(uid)
        assert _status(postgres, uid) != "FAILED"
        exchange.admin.advance_clock(
            row["sign_deadline_ms"] + ABSENT_AFTER_DEADLINE_MS + 1_000 - exchange.admin.now_ms()
        )
        ex.reconcile(uid)
        assert eventually(lambda: _status(postgres, uid) == "FAILED")
        assert executions(postgres, uid)[0]["error"]["code"] == "PROVEN_ABSENT"
        again = failure(lambda: ex.execute(uid, pid))
        assert again.code is grpc.StatusCode.ALREADY_EXISTS
    assert exchange.post_count() == 0
    assert exchange.order_count() == 0


def test_killed_after_the_exchange_accepted_the_order_it_is_found_and_filled(
    postgres: Postgres, exchange: Exchange, tmp_path: Path
) -> None:
    uid = user()
    pid = seed_proposal(postgres, uid, price=exchange.price("BTC-EUR"))
    with process_executor(postgres, exchange.url, tmp_path / "a.log", crash_at="after_send") as (ex, proc):
        ex.set_policy(uid)
        report = failure(lambda: ex.execute(uid, pid))
        assert report.code is grpc.StatusCode.UNAVAILABLE
        assert proc.proc.wait(10) == -9
    assert _status(postgres, uid) == "SUBMITTING"
    assert exchange.order_count() == 1

    with process_executor(postgres, exchange.url, tmp_path / "b.log") as (ex, _):
        assert eventually(lambda: _status(postgres, uid) == "FILLED")
        row = executions(postgres, uid)[0]
        assert row["exchange_order_id"] == exchange.orders()[0]["orderId"]
    assert exchange.post_count() == 1
    assert exchange.order_count() == 1
