"""Past activity seeded before a measurement, so the benchmark sees a database that has lived.

A fresh database answers every query from a handful of rows; production's answers the same
queries over months of executions and LLM calls. :func:`seed_history` brings the benchmark
database to ``target`` past executions (cumulative: seeding 100 000 then 1 000 000 adds 900 000),
each with the proposal it executed, and one LLM usage row per execution ("budget rows in
proportion": every proposal costs at least one budget reservation).

Seeded with set-based SQL (``INSERT … SELECT … FROM generate_series``) as the database owner,
so 1 000 000 executions take tens of seconds, not hours. What the rows look like:

* 1 000 history users (``hist-0`` … ``hist-999``) share them; the measured users have none, so
  per-user reads stay as small as a user's own history, and any slowdown with size comes from
  reads that are not bounded by user or window (account-wide sums, scans of every execution).
* every row is older than the current UTC day (one every 7 seconds going back; 1 000 000 reach
  about 81 days back), so no validator, cap or budget window counts them: the work per request is
  the same at every size, only what the queries wade through grows;
* executions are FILLED, alternately live and paper, buys and sells of 10 EUR over three markets
  (the paper wallet stays roughly flat); usage rows are committed.

Trade fills (``oracle.trade_history``) and the books built from them (``oracle.book_positions``,
``oracle.book_entries``) are not seeded.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg

HISTORY_USERS = 1000
SECONDS_BETWEEN_ROWS = 7
BATCH = 250_000  # rows per statement: bounded memory, progress in between

# g is the row's number (1-based, stable across runs): its ids are derived from it, so seeding is
# cumulative and a re-run of the same range would conflict instead of duplicating.
_PROPOSALS = """
INSERT INTO oracle.trade_proposals (proposal_id, user_id, market, side, amount_quote, confidence,
  rationale, analyst, model, market_snapshot, policy_snapshot, status, created_at, expires_at)
SELECT md5('proposal-' || g)::uuid, 'hist-' || (g %% {users}),
       (ARRAY['BTC-EUR', 'ETH-EUR', 'SOL-EUR'])[1 + g %% 3], CASE WHEN (g / 2) %% 2 = 0 THEN 'buy' ELSE 'sell' END,
       10, 75, 'history', 'rules', 'rules-v1', '{{}}', '{{}}', 'expired', t - interval '1 minute', t
  FROM (SELECT g, date_trunc('day', now()) - make_interval(secs => g * {step}) AS t
          FROM generate_series(%(first)s::bigint, %(last)s::bigint) g) s
"""

_EXECUTIONS = """
INSERT INTO oracle.trade_executions (execution_id, user_id, proposal_id, mode, market, side,
  amount_quote, status, client_order_id, exchange_order_id, filled_amount, filled_amount_quote,
  fee_paid, fee_currency, principal, preflight, claimed_at, submitting_at, updated_at)
SELECT md5('execution-' || g)::uuid, 'hist-' || (g %% {users}), md5('proposal-' || g)::uuid,
       CASE WHEN g %% 2 = 0 THEN 'live' ELSE 'paper' END,
       (ARRAY['BTC-EUR', 'ETH-EUR', 'SOL-EUR'])[1 + g %% 3], CASE WHEN (g / 2) %% 2 = 0 THEN 'buy' ELSE 'sell' END,
       10, 'FILLED', md5('order-' || g)::uuid, 'hist-' || g, 0.0001, 10, 0.025, 'EUR', 'scanner', '{{}}',
       t, t, t
  FROM (SELECT g, date_trunc('day', now()) - make_interval(secs => g * {step}) AS t
          FROM generate_series(%(first)s::bigint, %(last)s::bigint) g) s
"""

_USAGE = """
INSERT INTO oracle.gpt_usage_log (reservation_id, user_id, purpose, model, status, max_tokens,
  estimated_tokens, estimated_cost_micros, prompt_tokens, completion_tokens, cost_micros,
  reserved_at, expires_at, committed_at)
SELECT md5('usage-' || g)::uuid, 'hist-' || (g %% {users}), 'history', 'gpt-4o-mini', 'committed', 400,
       1300, 500, 850, 300, 450, t, t + interval '5 minutes', t + interval '2 seconds'
  FROM (SELECT g, date_trunc('day', now()) - make_interval(secs => g * {step}) AS t
          FROM generate_series(%(first)s::bigint, %(last)s::bigint) g) s
"""


# What the measurements of earlier sizes wrote today, moved one day back: they become history too.
# Without it, each size would also measure a busier day (the account's notional today, the users'
# figures) than the one before, not only a larger history. Timestamps only (no trigger watches
# them); proposals are immutable and need no move (their executions are final), and the budget's
# usage rows may not change (a trigger refuses it): its benchmark uses new users at every size.
_AGE_THE_DAY = (
    "UPDATE oracle.trade_executions SET claimed_at = claimed_at - interval '1 day',"
    " submitting_at = submitting_at - interval '1 day', updated_at = updated_at - interval '1 day'"
    " WHERE claimed_at >= date_trunc('day', now())",
    "UPDATE oracle.book_entries SET filled_at = filled_at - interval '1 day' WHERE filled_at >= date_trunc('day', now())",
)


def age_the_day(admin_url: str) -> int:
    """Move what the earlier measurements wrote today to yesterday (:data:`_AGE_THE_DAY`), so that
    the next size starts from an empty day like the first did; returns the executions moved."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        with conn.transaction():
            moved = conn.execute(_AGE_THE_DAY[0]).rowcount
            for statement in _AGE_THE_DAY[1:]:
                conn.execute(statement)
    return moved


def seed_history(admin_url: str, target: int, *, already: int, say: Callable[[str], None] | None = None) -> int:
    """Add past executions ``already + 1 … target`` (and their proposals and usage rows);
    returns the new total. ``already`` is what earlier calls of this run seeded."""
    fmt = {"users": HISTORY_USERS, "step": SECONDS_BETWEEN_ROWS}
    first = already + 1
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        while first <= target:
            last = min(first + BATCH - 1, target)
            with conn.transaction():
                bounds = {"first": first, "last": last}
                conn.execute(_PROPOSALS.format(**fmt), bounds)
                conn.execute(_EXECUTIONS.format(**fmt), bounds)
                conn.execute(_USAGE.format(**fmt), bounds)
            if say is not None:
                say(f"history: {last:,} past executions seeded")
            first = last + 1
        # vacuumed, with fresh statistics, as autovacuum keeps a database that grew slowly (else the
        # bulk insert's vacuum and checkpoint would run during the next measurement)
        conn.execute("VACUUM (ANALYZE) oracle.trade_proposals, oracle.trade_executions, oracle.gpt_usage_log")
        conn.execute("CHECKPOINT")
    return max(target, already)
