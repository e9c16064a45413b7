"""The rules about an execution's status live in SQL (migration 0022) and the Python that must
agree with them is compared here, against the real database: which statuses are final
(``oracle.execution_is_final`` and ``state_machine.TERMINAL``) and which executions count toward
the limits (``oracle.execution_counts``)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.executor.model import Status
from services.executor.state_machine import TERMINAL
from tests.harness import Postgres


def test_the_database_and_the_state_machine_agree_on_final_statuses(postgres: Postgres) -> None:
    with postgres.admin() as conn:
        final = {
            status
            for status in Status
            if conn.execute("SELECT oracle.execution_is_final(%s)", (status.value,)).fetchone() == (True,)
        }
    assert final == set(TERMINAL)
    assert final == {Status.FILLED, Status.CANCELED, Status.FAILED}


def test_every_status_the_table_allows_is_a_state_machine_status(postgres: Postgres) -> None:
    with postgres.admin() as conn:
        row = conn.execute(
            "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c"
            " WHERE c.conrelid = 'oracle.trade_executions'::regclass AND c.contype = 'c'"
            " AND pg_get_constraintdef(c.oid) LIKE '%%status%%'"
        ).fetchone()
    assert row is not None
    allowed = set(row[0].split("ARRAY[", 1)[1].split("]", 1)[0].replace("::text", "").replace("'", "").split(", "))
    assert allowed == {s.value for s in Status}


@pytest.mark.parametrize("status", list(Status))
@pytest.mark.parametrize("filled", [Decimal(0), Decimal("0.001")])
def test_which_executions_count_toward_the_limits(postgres: Postgres, status: Status, filled: Decimal) -> None:
    with postgres.admin() as conn:
        row = conn.execute("SELECT oracle.execution_counts(%s, %s)", (status.value, filled)).fetchone()
    expected = status is not Status.FAILED and not (status is Status.CANCELED and filled == 0)
    assert row == (expected,)


def test_the_unresolved_index_matches_queries_written_with_the_rule(postgres: Postgres) -> None:
    """The rule is an inlined SQL function, so a query written with it still matches the partial
    index's predicate (the planner may use the index at all)."""
    with postgres.admin() as conn:
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT execution_id FROM oracle.trade_executions"
                " WHERE NOT oracle.execution_is_final(status) ORDER BY updated_at LIMIT 10"
            ).fetchall()
        )
    assert "trade_executions_unresolved" in plan


def test_the_reconcile_queue_index_serves_the_reconcilers_query(postgres: Postgres) -> None:
    """The reconciler's candidates are read through the partial index on its schedule (a pass over
    many rows must not scan the table per pass)."""
    with postgres.admin() as conn:
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT execution_id FROM oracle.trade_executions WHERE mode = 'live'"
                " AND oracle.execution_needs_reconcile(status, found_late_until, fee_pending)"
                " ORDER BY next_reconcile_at NULLS FIRST, updated_at LIMIT 10"
            ).fetchall()
        )
    assert "trade_executions_reconcile_queue" in plan
