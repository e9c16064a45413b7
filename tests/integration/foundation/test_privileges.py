"""The privilege matrix of docs/database.md is what the database allows, role × table × verb."""

from __future__ import annotations

import re
import uuid

import psycopg
import pytest

from tests.harness import PROJECT_ROOT, Postgres

VERBS = {"S": "SELECT", "I": "INSERT", "U": "UPDATE", "D": "DELETE"}
ROLES = ("oracle_scanner", "oracle_executor", "oracle_budget")


def documented_table(name: str) -> list[list[str]]:
    """The rows (cells) of the Markdown table between ``<!-- name:start -->`` and its end."""
    text = (PROJECT_ROOT / "docs" / "database.md").read_text()
    block = text.split(f"<!-- {name}:start -->")[1].split(f"<!-- {name}:end -->")[0]
    rows = [r for r in block.strip().splitlines() if r.startswith("|")][2:]
    return [[c.strip() for c in row.strip("|").split("|")] for row in rows]


def documented_matrix() -> dict[tuple[str, str], set[str]]:
    matrix: dict[tuple[str, str], set[str]] = {}
    for cells in documented_table("privilege-matrix"):
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


FUNCTIONS = {
    cells[0]: {role for role, cell in zip(ROLES, cells[1:], strict=True) if cell == "X"}
    for cells in documented_table("function-matrix")
}


def test_every_function_is_documented_and_none_is_public(postgres: Postgres) -> None:
    with postgres.admin() as conn:
        rows = conn.execute(
            "SELECT p.proname, p.proacl IS NULL AS default_acl,"
            " EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0) AS public_execute"
            " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'oracle'"
        ).fetchall()
    assert {r[0] for r in rows} == set(FUNCTIONS)
    # A NULL ACL is PostgreSQL's default, which includes EXECUTE for PUBLIC.
    assert [r[0] for r in rows if r[1] or r[2]] == []


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_function_execute_rights_are_the_documented_ones(postgres: Postgres, function: str) -> None:
    with postgres.admin() as conn:
        allowed = {
            role
            for role in ROLES
            if conn.execute(
                "SELECT bool_and(has_function_privilege(%s, p.oid, 'EXECUTE')) FROM pg_proc p"
                " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'oracle' AND p.proname = %s",
                (role, function),
            ).fetchone()
            == (True,)
        }
    assert allowed == FUNCTIONS[function]


@pytest.mark.parametrize(
    ("service", "call"),
    [
        ("executor", "SELECT oracle.expire_stale_reservations()"),
        ("scanner", "SELECT oracle.expire_stale_reservations()"),
        ("budget", "SELECT * FROM oracle.claim_due_scan_jobs('x', 10, 3600)"),
        ("scanner", "SELECT * FROM oracle.executions_not_final()"),
        ("budget", "SELECT * FROM oracle.kill_switch_state()"),
        ("budget", "SELECT * FROM oracle.executions_to_reconcile('live', 10, 0)"),
    ],
)
def test_no_service_runs_another_services_cross_user_function(postgres: Postgres, service: str, call: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for function"):
        _attempt(postgres, service, call)


@pytest.mark.parametrize("service", ["scanner", "executor", "budget"])
def test_audit_events_are_written_only_through_the_chain(postgres: Postgres, service: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table audit_events"):
        _attempt(
            postgres,
            service,
            "INSERT INTO oracle.audit_events (user_id, sequence, service, kind, payload, prev_hash, hash)"
            f" VALUES ('alice', 1000, '{service}', 'forged', '{{}}', '', 'forged')",
        )
    other = "executor" if service != "executor" else "scanner"
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="may not write audit events as"):
        _attempt(postgres, service, f"SELECT oracle.append_audit_event('{other}', 'forged', '', '', '{{}}')")
    # Its own name works, through the chain.
    _attempt(postgres, service, f"SELECT oracle.append_audit_event('{service}', 'test.own', '', '', '{{}}')")
