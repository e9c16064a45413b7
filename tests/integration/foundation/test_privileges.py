"""The privilege matrix of docs/database.md is what the database allows, role × table × verb."""

from __future__ import annotations

import re
import uuid

import psycopg
import pytest

from tests.harness import PROJECT_ROOT, Postgres

VERBS = {"S": "SELECT", "I": "INSERT", "U": "UPDATE", "D": "DELETE"}
ROLES = ("oracle_scanner", "oracle_executor", "oracle_budget")


def documented_matrix() -> dict[tuple[str, str], set[str]]:
    text = (PROJECT_ROOT / "docs" / "database.md").read_text()
    block = text.split("<!-- privilege-matrix:start -->")[1].split("<!-- privilege-matrix:end -->")[0]
    rows = [r for r in block.strip().splitlines() if r.startswith("|")][2:]
    matrix: dict[tuple[str, str], set[str]] = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        table, grants = cells[0], cells[1:]
        for role, grant in zip(ROLES, grants, strict=True):
            assert re.fullmatch(r"-|[SIUD]+", grant), f"bad cell {grant!r}"
            matrix[(role, table)] = {VERBS[c] for c in grant if c != "-"}
    return matrix


MATRIX = documented_matrix()


def test_the_matrix_covers_every_table(postgres: Postgres) -> None:
    with postgres.admin() as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'oracle'").fetchall()}
    assert tables == {t for _, t in MATRIX}


@pytest.mark.parametrize(("role", "table"), sorted(MATRIX))
def test_role_has_exactly_the_documented_privileges(postgres: Postgres, role: str, table: str) -> None:
    with postgres.admin() as conn:
        actual = {
            verb
            for verb in VERBS.values()
            if conn.execute("SELECT has_table_privilege(%s, %s, %s)", (role, f"oracle.{table}", verb)).fetchone()
            == (True,)
        }
    assert actual == MATRIX[(role, table)]


def _attempt(postgres: Postgres, service: str, sql: str) -> None:
    with psycopg.connect(postgres.url(service)) as conn, conn.transaction():
        conn.execute("SELECT set_config('app.user_id', 'alice', true)")
        conn.execute(sql)


def test_scanner_cannot_write_trade_executions(postgres: Postgres) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
        _attempt(
            postgres,
            "scanner",
            "INSERT INTO oracle.trade_executions (execution_id, user_id, proposal_id, mode, market, side,"
            " amount_quote, status, client_order_id, principal, preflight, claimed_at, updated_at)"
            f" VALUES ('{uuid.uuid4()}', 'alice', '{uuid.uuid4()}', 'live', 'BTC-EUR', 'buy', 10, 'CLAIMED',"
            f" '{uuid.uuid4()}', 'x', '{{}}', now(), now())",
        )


def test_executor_cannot_write_gpt_usage_log(postgres: Postgres) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
        _attempt(
            postgres,
            "executor",
            "INSERT INTO oracle.gpt_usage_log (reservation_id, user_id, purpose, model, status, max_tokens,"
            f" estimated_tokens, estimated_cost_micros, reserved_at, expires_at) VALUES ('{uuid.uuid4()}',"
            " 'alice', 'p', 'm', 'reserved', 1, 1, 0, now(), now() + interval '1 minute')",
        )


@pytest.mark.parametrize("service", ["scanner", "executor", "budget"])
@pytest.mark.parametrize("statement", ["UPDATE oracle.audit_events SET kind = 'x'", "DELETE FROM oracle.audit_events"])
def test_nobody_updates_or_deletes_audit_events(postgres: Postgres, service: str, statement: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
        _attempt(postgres, service, statement)


def test_even_the_owner_cannot_rewrite_audit_history(postgres: Postgres) -> None:
    with postgres.admin() as conn:
        conn.execute("SELECT set_config('app.user_id', 'owner-check', false)")
        conn.execute("SELECT oracle.append_audit_event('budget', 'test.event', '', '', '{}'::jsonb)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("UPDATE oracle.audit_events SET kind = 'forged' WHERE user_id = 'owner-check'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("DELETE FROM oracle.audit_events WHERE user_id = 'owner-check'")
