"""The budget role is the only writer of gpt_usage_log, and the database itself refuses any
status move outside the reservation state machine (migration 0010)."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from tests.harness import Postgres, new_user_id
from tests.integration.budget.servers import Budget

WRITES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")


def _privileges(postgres: Postgres, role: str, table: str) -> set[str]:
    with postgres.admin() as conn:
        granted = set()
        for verb in WRITES:
            row = conn.execute("SELECT has_table_privilege(%s, %s, %s)", (role, table, verb)).fetchone()
            if row is not None and row[0]:
                granted.add(verb)
        return granted


def test_only_the_budget_role_may_write_the_usage_log(postgres: Postgres) -> None:
    assert _privileges(postgres, "oracle_scanner", "oracle.gpt_usage_log") == set()
    assert _privileges(postgres, "oracle_executor", "oracle.gpt_usage_log") == set()
    assert _privileges(postgres, "oracle_budget", "oracle.gpt_usage_log") == {"INSERT", "UPDATE"}
    assert _privileges(postgres, "oracle_scanner", "oracle.budget_limits") == set()
    assert _privileges(postgres, "oracle_executor", "oracle.budget_limits") == set()
    with postgres.admin() as conn:
        writers = {
            grantee
            for (grantee,) in conn.execute(
                "SELECT DISTINCT grantee FROM information_schema.role_table_grants"
                " WHERE table_schema = 'oracle' AND table_name = 'gpt_usage_log'"
                " AND privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')"
                " AND grantee <> (SELECT tableowner FROM pg_tables"
                "                 WHERE schemaname = 'oracle' AND tablename = 'gpt_usage_log')"
            ).fetchall()
        }
    # oracle_definer never logs in; it owns expire_stale_reservations (UPDATE only).
    assert writers == {"oracle_budget", "oracle_definer"}


@pytest.mark.parametrize("service", ["scanner", "executor"])
def test_other_services_cannot_insert_or_update(postgres: Postgres, service: str) -> None:
    user = new_user_id(service)
    for sql in (
        "INSERT INTO oracle.gpt_usage_log (reservation_id, user_id, purpose, model, status, max_tokens,"
        f" estimated_tokens, estimated_cost_micros, reserved_at, expires_at) VALUES ('{uuid.uuid4()}', '{user}',"
        " 'p', 'm', 'reserved', 1, 1, 0, now(), now() + interval '1 minute')",
        "UPDATE oracle.gpt_usage_log SET status = 'released'",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with psycopg.connect(postgres.url(service)) as conn, conn.transaction():
                conn.execute("SELECT set_config('app.user_id', %s, true)", (user,))
                conn.execute(sql)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("start", "sql"),
    [
        ("committed", "UPDATE oracle.gpt_usage_log SET status = 'reserved' WHERE user_id = %s"),
        ("committed", "UPDATE oracle.gpt_usage_log SET cost_micros = 0 WHERE user_id = %s"),
        ("released", "UPDATE oracle.gpt_usage_log SET status = 'reserved' WHERE user_id = %s"),
        ("expired", "UPDATE oracle.gpt_usage_log SET status = 'released', released_at = now() WHERE user_id = %s"),
        (
            "reserved",
            "UPDATE oracle.gpt_usage_log SET reserved_at = reserved_at - interval '2 hours' WHERE user_id = %s",
        ),
        ("reserved", "UPDATE oracle.gpt_usage_log SET status = 'committed' WHERE user_id = %s"),
    ],
)
def test_the_database_refuses_moves_outside_the_state_machine(budget: Budget, start: str, sql: str) -> None:
    user = new_user_id("sm")
    reservation = budget.reserve(user)
    with budget.postgres.admin() as conn:
        if start == "committed":
            conn.execute(
                "UPDATE oracle.gpt_usage_log SET status = 'committed', prompt_tokens = 1, completion_tokens = 1,"
                " cost_micros = 1, committed_at = now() WHERE reservation_id = %s",
                (reservation.reservation_id,),
            )
        elif start == "released":
            conn.execute(
                "UPDATE oracle.gpt_usage_log SET status = 'released', released_at = now() WHERE reservation_id = %s",
                (reservation.reservation_id,),
            )
        elif start == "expired":
            conn.execute(
                "UPDATE oracle.gpt_usage_log SET status = 'expired' WHERE reservation_id = %s",
                (reservation.reservation_id,),
            )
    before = budget.rows(user)
    with pytest.raises(psycopg.errors.IntegrityError):
        with psycopg.connect(budget.postgres.url("budget")) as conn, conn.transaction():
            conn.execute("SELECT set_config('app.user_id', %s, true)", (user,))
            conn.execute(sql, (user,))  # type: ignore[call-overload]
    assert budget.rows(user) == before


def test_usage_rows_are_never_deleted(budget: Budget) -> None:
    user = new_user_id("del")
    budget.reserve(user)
    with pytest.raises(psycopg.errors.InsufficientPrivilege), budget.postgres.admin() as conn:
        conn.execute("DELETE FROM oracle.gpt_usage_log WHERE user_id = %s", (user,))
    assert len(budget.rows(user)) == 1
