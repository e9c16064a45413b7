"""Row-level security: a transaction for user A sees A's rows and none of B's, on every user
table, through each service role that may read it, also on a pooled connection reused after a
transaction for B; with no user set, zero rows."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from shared.db import Database
from tests.harness import Postgres, new_user_id
from tests.integration.foundation.test_constraints import insert_execution, seed_proposal
from tests.integration.foundation.test_privileges import MATRIX

USER_TABLES = (
    "trading_policies",
    "scan_jobs",
    "trade_proposals",
    "trade_executions",
    "trade_history",
    "book_positions",
    "book_entries",
    "trading_states",
    "budget_limits",
    "gpt_usage_log",
    "audit_events",
)
SERVICES = {"scanner": "oracle_scanner", "executor": "oracle_executor", "budget": "oracle_budget"}


def seed_user(conn: psycopg.Connection[Any], user: str) -> None:
    """One row (at least) in every user table for ``user``, written as the superuser."""
    conn.execute(
        "INSERT INTO oracle.trading_policies (user_id, min_order_eur, max_order_eur, min_confidence, cooldown_seconds,"
        " anti_flip_seconds, daily_trade_cap, hourly_trade_cap, daily_notional_cap_eur, price_guard_pct)"
        " VALUES (%s, 5, 50, 50, 60, 3600, 10, 5, 500, 2)",
        (user,),
    )
    conn.execute(
        "INSERT INTO oracle.scan_jobs (job_id, user_id, markets, interval_seconds, analyst, next_run_at)"
        " VALUES (%s, %s, '{BTC-EUR}', 60, 'rules', now())",
        (str(uuid.uuid4()), user),
    )
    proposal_id = seed_proposal(conn, user)
    insert_execution(conn, user, proposal_id)
    conn.execute(
        "INSERT INTO oracle.trade_history (execution_id, fill_id, user_id, market, side, amount, price, filled_at)"
        " SELECT execution_id, 'f1', user_id, market, side, 0.001, 50000, now() FROM oracle.trade_executions"
        " WHERE proposal_id = %s",
        (proposal_id,),
    )
    conn.execute(
        "INSERT INTO oracle.book_positions (user_id, mode, market, quantity, cost_eur) VALUES (%s, 'live', 'BTC-EUR',"
        " 0.001, 50)",
        (user,),
    )
    conn.execute(
        "INSERT INTO oracle.book_entries (execution_id, fill_id, user_id, mode, market, side, filled_at,"
        " quantity_delta, cost_delta_eur, realized_pnl_eur) SELECT execution_id, fill_id, user_id, 'live', market,"
        " side, filled_at, amount, amount * price, 0 FROM oracle.trade_history WHERE user_id = %s",
        (user,),
    )
    conn.execute("INSERT INTO oracle.trading_states (user_id, mode) VALUES (%s, 'live')", (user,))
    conn.execute("INSERT INTO oracle.budget_limits (user_id, daily_calls, hourly_calls) VALUES (%s, 10, 5)", (user,))
    conn.execute(
        "INSERT INTO oracle.gpt_usage_log (reservation_id, user_id, purpose, model, status, max_tokens,"
        " estimated_tokens, estimated_cost_micros, reserved_at, expires_at)"
        " VALUES (%s, %s, 'scan', 'm', 'reserved', 100, 200, 10, now(), now() + interval '5 minutes')",
        (str(uuid.uuid4()), user),
    )
    with conn.transaction():
        conn.execute("SELECT set_config('app.user_id', %s, true)", (user,))
        conn.execute("SELECT oracle.append_audit_event('executor', 'test.seed', '', '', '{}'::jsonb)")


@pytest.fixture(scope="module")
def two_users(postgres: Postgres) -> tuple[str, str]:
    a, b = new_user_id("rls-a"), new_user_id("rls-b")
    with postgres.admin() as conn:
        seed_user(conn, a)
        seed_user(conn, b)
    return a, b


def readable(service: str) -> list[str]:
    return [t for t in USER_TABLES if "SELECT" in MATRIX[(SERVICES[service], t)]]


def counts(conn: psycopg.Connection[Any], table: str, a: str, b: str) -> tuple[int, int, int]:
    row = conn.execute(
        f"SELECT count(*) FILTER (WHERE user_id = %s) AS a, count(*) FILTER (WHERE user_id = %s) AS b,"
        f" count(*) AS total FROM oracle.{table}",
        (a, b),
    ).fetchone()
    assert row is not None
    values = list(row.values()) if isinstance(row, dict) else list(row)
    return int(values[0]), int(values[1]), int(values[2])


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_sees_only_its_own_rows(postgres: Postgres, two_users: tuple[str, str], service: str) -> None:
    a, b = two_users
    tables = readable(service)
    assert tables, "every service reads at least one user table"
    # max_size=1: the transaction for A reuses the very connection that just served B.
    db = Database(postgres.url(service), name="rls-test", min_size=1, max_size=1)
    db.open()
    try:
        for table in tables:
            with db.transaction(b) as conn:
                seen_a, seen_b, total = counts(conn, table, a, b)
                assert (seen_a, seen_b) == (0, total) and total > 0, table
            with db.transaction(a) as conn:
                seen_a, seen_b, total = counts(conn, table, a, b)
                assert seen_a > 0, f"{service} sees none of A's rows in {table}"
                assert seen_b == 0, f"{service} sees B's rows in {table}"
                assert total == seen_a, table
    finally:
        db.close()


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_no_user_set_sees_zero_rows(postgres: Postgres, two_users: tuple[str, str], service: str) -> None:
    a, b = two_users
    db = Database(postgres.url(service), name="rls-test", min_size=1, max_size=1)
    db.open()
    try:
        for table in readable(service):
            with db.transaction(a):
                pass  # the pooled connection served A just before
            with db.transaction(None) as conn:
                assert counts(conn, table, a, b) == (0, 0, 0), table
    finally:
        db.close()


def test_a_cannot_write_rows_for_b(postgres: Postgres, two_users: tuple[str, str]) -> None:
    a, b = two_users
    with psycopg.connect(postgres.url("budget")) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"), conn.transaction():
            conn.execute("SELECT set_config('app.user_id', %s, true)", (a,))
            conn.execute(
                "INSERT INTO oracle.budget_limits (user_id, daily_calls, hourly_calls) VALUES (%s, 1, 1)",
                (new_user_id(),),
            )
        with conn.transaction():
            conn.execute("SELECT set_config('app.user_id', %s, true)", (a,))
            updated = conn.execute("UPDATE oracle.budget_limits SET daily_calls = 99 WHERE user_id = %s", (b,))
            assert updated.rowcount == 0
