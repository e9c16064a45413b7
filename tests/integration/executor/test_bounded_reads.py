"""The account-wide reads of the claim (held under the account row lock, or feeding it) are index
ranges and running totals, never a scan of every execution (migration 0028,
docs/design.md#speed-that-lasts). Checked on the plans PostgreSQL makes for the functions' own
bodies (read from the catalog, so this tests the deployed text), as a generic plan — what a
function's statement runs with once its plan is cached — over a table of past executions with
fresh statistics. Speed itself is measured by `make bench`, never here."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import Postgres

PAST = 20_000
# the tables that grow with history
GROWING = {"trade_executions", "trade_history", "book_entries", "gpt_usage_log"}

# function → arguments (as SQL literals) of a claim made now
CALLS: dict[str, tuple[str, ...]] = {
    "account_in_flight_eur": ("'live'", "'buy'", "NULL", "now() - interval '10 seconds'"),
    "account_notional": ("'live'", "date_trunc('day', now())", "date_trunc('day', now()) + interval '1 day'"),
    "paper_wallet": ("'BTC-EUR'",),
    "account_book": ("'live'", "date_trunc('day', now())"),
}


@pytest.fixture
def lived_in(private_postgres: Postgres) -> Iterator[Postgres]:
    """A database with PAST executions of earlier days (live and paper, filled), analysed."""
    with private_postgres.admin() as conn:
        conn.execute(
            "INSERT INTO oracle.trade_proposals (proposal_id, user_id, market, side, amount_quote, confidence,"
            " rationale, analyst, model, market_snapshot, policy_snapshot, status, created_at, expires_at)"
            " SELECT md5('p' || g)::uuid, 'past-' || (g %% 100), 'BTC-EUR', 'buy', 10, 75, 'past', 'rules', 'r',"
            " '{}', '{}', 'expired', t - interval '1 minute', t"
            " FROM (SELECT g, date_trunc('day', now()) - make_interval(secs => g * 7) AS t"
            " FROM generate_series(1, %s) g) s",
            (PAST,),
        )
        conn.execute(
            "INSERT INTO oracle.trade_executions (execution_id, user_id, proposal_id, mode, market, side,"
            " amount_quote, status, client_order_id, exchange_order_id, filled_amount, filled_amount_quote,"
            " fee_paid, fee_currency, principal, preflight, claimed_at, submitting_at, updated_at)"
            " SELECT md5('e' || g)::uuid, 'past-' || (g %% 100), md5('p' || g)::uuid,"
            " CASE WHEN g %% 2 = 0 THEN 'live' ELSE 'paper' END, 'BTC-EUR', 'buy', 10, 'FILLED',"
            " md5('o' || g)::uuid, 'x' || g, 0.0001, 10, 0.025, 'EUR', 'scanner', '{}', t, t, t"
            " FROM (SELECT g, date_trunc('day', now()) - make_interval(secs => g * 7) AS t"
            " FROM generate_series(1, %s) g) s",
            (PAST,),
        )
        conn.execute("ANALYZE oracle.trade_executions, oracle.trade_proposals")
    yield private_postgres


def _scans(plan: dict[str, Any]) -> Iterator[tuple[str, str]]:
    yield plan["Node Type"], plan.get("Relation Name", "")
    for child in plan.get("Plans", []):
        yield from _scans(child)


def _generic_plan(conn: Any, function: str, args: tuple[str, ...]) -> list[tuple[str, str]]:
    row = conn.execute(
        "SELECT p.prosrc, p.proargnames, p.pronargs,"
        " ARRAY(SELECT format_type(t.oid, NULL) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS t(oid, n)"
        " ORDER BY t.n)"
        " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = 'oracle' AND p.proname = %s",
        (function,),
    ).fetchone()
    assert row is not None, function
    body, names, count, types = row
    for i, name in enumerate(names[:count], start=1):  # the parameters by name → $n
        body = re.sub(rf"\b{name}\b", f"${i}", body)
    conn.execute(f"PREPARE bounded_read ({', '.join(types)}) AS {body}")
    try:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        plan = conn.execute(f"EXPLAIN (FORMAT JSON) EXECUTE bounded_read ({', '.join(args)})").fetchone()[0]
    finally:
        conn.execute("RESET plan_cache_mode")
        conn.execute("DEALLOCATE bounded_read")
    document = plan if isinstance(plan, list) else json.loads(plan)
    return list(_scans(document[0]["Plan"]))


@pytest.mark.parametrize("function", sorted(CALLS))
def test_no_account_wide_read_of_the_claim_scans_history(lived_in: Postgres, function: str) -> None:
    with lived_in.admin() as conn:
        conn.execute("SET search_path = oracle, pg_catalog")
        scans = _generic_plan(conn, function, CALLS[function])
    assert scans, function
    full = [(node, table) for node, table in scans if node == "Seq Scan" and table in GROWING]
    assert full == [], f"{function} scans {full}: {scans}"
