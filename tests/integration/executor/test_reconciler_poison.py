"""A reconciler nothing can stop (docs/design.md#reconciler): rows whose handling raises are
contained and backed off, the pass goes on; rows that never resolve cannot starve the others.

Candidates are seeded directly in SQL as the admin (10,000 of them). A "poison" row is one no
code path expects: its ``preflight`` is a JSON array (say, written by an older version), so
reading the execution raises ``TypeError`` — not a database or exchange error."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from oracle.executor.v1 import executor_service_pb2 as pb

from tests.harness import Postgres, eventually, new_user_id
from tests.integration.executor.kit import Exchange, in_process_executor, process_executor

GOOD = 10_000
POISON = 25


def _seed(postgres: Postgres, *, good: int, poison: int, users: int) -> tuple[list[str], list[str]]:
    """``good`` stale CLAIMED paper executions (their process died before sending: the reconciler
    fails them STALE_CLAIM without the network) and ``poison`` older ones that raise when read.
    Returns (good ids, poison ids)."""
    prefix = new_user_id("rp")
    with postgres.admin() as conn:
        rows = conn.execute(
            "WITH p AS ("
            "  INSERT INTO oracle.trade_proposals (proposal_id, user_id, market, side, amount_quote, confidence,"
            "   rationale, analyst, model, market_snapshot, policy_snapshot, status, created_at, expires_at)"
            "  SELECT gen_random_uuid(), %(prefix)s || '-' || (g %% %(users)s), 'BTC-EUR', 'buy', 10, 75, 'seeded',"
            "   'rules', 'rules-v1', '{}', '{}', 'open', now() - interval '3 hours', now() + interval '1 hour'"
            "  FROM generate_series(1, %(total)s) g RETURNING proposal_id, user_id),"
            " n AS (SELECT proposal_id, user_id, row_number() OVER (ORDER BY proposal_id) AS i FROM p)"
            " INSERT INTO oracle.trade_executions (execution_id, user_id, proposal_id, mode, market, side,"
            "  amount_quote, status, client_order_id, principal, preflight, claimed_at, updated_at)"
            " SELECT gen_random_uuid(), user_id, proposal_id, 'paper', 'BTC-EUR', 'buy', 10, 'CLAIMED',"
            "  gen_random_uuid(), 'operator',"
            "  CASE WHEN i <= %(poison)s THEN '[1, 2]'::jsonb ELSE '{}'::jsonb END,"
            "  now() - interval '2 hours',"
            "  now() - interval '2 hours' + CASE WHEN i <= %(poison)s THEN interval '0' ELSE interval '1 minute' END"
            " FROM n RETURNING execution_id::text, preflight",
            {"prefix": prefix, "users": users, "total": good + poison, "poison": poison},
        ).fetchall()
    poisoned = [r[0] for r in rows if r[1] == [1, 2]]
    healthy = [r[0] for r in rows if r[1] != [1, 2]]
    assert len(poisoned) == poison and len(healthy) == good
    return healthy, poisoned


def _states(postgres: Postgres, ids: list[str]) -> list[tuple[Any, ...]]:
    with postgres.admin() as conn:
        return conn.execute(
            "SELECT status, error->>'code', reconcile_attempts, reconcile_error,"
            " next_reconcile_at > clock_timestamp() FROM oracle.trade_executions WHERE execution_id = ANY(%s::uuid[])",
            (ids,),
        ).fetchall()


def _text(log_path: Path) -> str:
    return log_path.read_text(encoding="utf-8", errors="replace")


def _reconciled_line(log_path: Path) -> dict[str, Any] | None:
    for line in _text(log_path).splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("message") == "reconciled" and record.get("examined", 0) >= GOOD + POISON:
            return dict(record)
    return None


def test_one_pass_over_10000_candidates_resolves_every_row_but_those_that_raise(
    postgres: Postgres, exchange: Exchange, tmp_path: Path
) -> None:
    good, poison = _seed(postgres, good=GOOD, poison=POISON, users=10)
    log_path = tmp_path / "executor.log"
    # A real executor process; its startup pass is the one pass (the timer's next is an hour away).
    with process_executor(
        postgres, exchange.url, log_path, mode="paper", reconcile_batch="20000", reconcile_backoff_seconds="3600"
    ):
        deadline = time.monotonic() + 600
        line = _reconciled_line(log_path)
        while line is None and time.monotonic() < deadline and "reconciler pass failed" not in _text(log_path):
            time.sleep(0.5)
            line = _reconciled_line(log_path)
    assert line is not None, "no complete reconciler pass was logged"
    assert line["errors"] >= POISON

    assert {(s[0], s[1]) for s in _states(postgres, good)} == {("FAILED", "STALE_CLAIM")}
    for status, _, attempts, error, later in _states(postgres, poison):
        # contained: logged, counted, backed off with its own next attempt; left as it was
        assert (status, attempts, later) == ("CLAIMED", 1, True)
        assert error.startswith("TypeError")


def test_rows_that_never_resolve_cannot_starve_the_rest(postgres: Postgres, exchange: Exchange) -> None:
    batch = 5
    _, poison = _seed(postgres, good=0, poison=batch, users=1)  # a whole batch of rows that raise …
    [newer], _ = _seed(postgres, good=1, poison=0, users=1)  # … older than this one
    with in_process_executor(postgres, exchange.url, mode="paper", reconcile_batch=str(batch)) as ex:
        # the executor's startup pass took the batch of poison rows (oldest first) and backed them off
        assert eventually(lambda: all(s[2] >= 1 for s in _states(postgres, poison)), timeout=120)
        for _ in range(200):  # every pass completes; the queue moves on past the poison
            reply: pb.ReconcileExecutionsResponse = ex.reconcile()
            if any(e.execution_id == newer for e in reply.executions):
                break
        else:
            raise AssertionError("the newer execution was never reached")
    [(status, code, _, _, _)] = _states(postgres, [newer])
    assert (status, code) == ("FAILED", "STALE_CLAIM")
    assert {s[:1] + s[2:3] for s in _states(postgres, poison)} == {("CLAIMED", 1)}  # each tried once
