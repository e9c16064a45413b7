"""Every SQL statement of the scanner.

Functions take a connection from ``Database.transaction(user_id)`` (row-level security limits
them to that user) and return dict rows. Cross-user work goes through the SECURITY DEFINER
functions ``oracle.claim_due_scan_jobs`` and ``oracle.expire_due_proposals``. Which statements
a job may run, and under which check, is decided in lease.py, not here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg.types.json import Jsonb

from shared.db import Conn
from shared.errors import InvariantBroken

Row = dict[str, Any]

_JOB_COLUMNS = """
    j.job_id::text AS job_id, j.user_id::text AS user_id, j.markets::text[] AS markets,
    j.interval_seconds, j.analyst, j.paused, j.next_run_at, j.locked_by, j.lock_expires_at,
    j.fencing_token, j.attempts, j.last_error, j.last_run_at, j.heartbeat_at, j.created_at,
    j.last_outcomes, j.keep_proposing
"""

_PROPOSAL_COLUMNS = """
    p.proposal_id::text AS proposal_id, p.user_id::text AS user_id, p.job_id::text AS job_id,
    p.market::text AS market, p.side::text AS side, p.amount_quote, p.confidence::integer AS confidence,
    p.rationale, p.analyst, p.model, p.market_snapshot, p.policy_snapshot, p.created_at, p.expires_at,
    p.fencing_token,
    CASE WHEN p.status = 'open' AND p.expires_at <= {now} THEN 'expired' ELSE p.status END AS status
"""
# The database's clock, read once per statement (a subquery with a volatile function is not
# pulled up into the outer query): what "expired" means in a read.
_READ_CLOCK = " CROSS JOIN (SELECT oracle.clock() AS now) t"


# ------------------------------------------------------------------------------- scan jobs
def insert_job(
    conn: Conn,
    *,
    job_id: str,
    user_id: str,
    markets: Sequence[str],
    interval_seconds: int,
    analyst: str,
    keep_proposing: bool,
) -> Row:
    """A new job, created and due now on the database's clock."""
    row = conn.execute(
        "INSERT INTO oracle.scan_jobs AS j (job_id, user_id, markets, interval_seconds, analyst, keep_proposing,"  # noqa: S608 -- constant column fragments, values bound
        " next_run_at, created_at) SELECT %s, %s, %s, %s, %s, %s, t.now, t.now FROM (SELECT oracle.clock() AS now) t"
        " RETURNING" + _JOB_COLUMNS,
        (job_id, user_id, list(markets), interval_seconds, analyst, keep_proposing),
    ).fetchone()
    if row is None:
        raise InvariantBroken("row is missing")
    return row


def get_job(conn: Conn, job_id: str) -> Row | None:
    return conn.execute("SELECT" + _JOB_COLUMNS + " FROM oracle.scan_jobs j WHERE j.job_id = %s", (job_id,)).fetchone()


def list_jobs(conn: Conn, *, after: tuple[datetime, str] | None, limit: int) -> list[Row]:
    """The user's jobs by (created_at, job_id), after the given position."""
    if after is None:
        return conn.execute(
            "SELECT" + _JOB_COLUMNS + " FROM oracle.scan_jobs j ORDER BY j.created_at, j.job_id LIMIT %s", (limit,)
        ).fetchall()
    return conn.execute(
        "SELECT" + _JOB_COLUMNS + " FROM oracle.scan_jobs j WHERE (j.created_at, j.job_id) > (%s, %s::uuid)"
        " ORDER BY j.created_at, j.job_id LIMIT %s",
        (after[0], after[1], limit),
    ).fetchall()


def set_paused(conn: Conn, job_id: str, paused: bool) -> Row | None:
    return conn.execute(
        "UPDATE oracle.scan_jobs AS j SET paused = %s WHERE j.job_id = %s RETURNING" + _JOB_COLUMNS,  # noqa: S608 -- constant column fragments, values bound
        (paused, job_id),
    ).fetchone()


def delete_job(conn: Conn, job_id: str) -> bool:
    return conn.execute("DELETE FROM oracle.scan_jobs WHERE job_id = %s", (job_id,)).rowcount == 1


# ------------------------------------------------------------------------------- leases
def claim_due_jobs(conn: Conn, *, instance: str, limit: int, lease_seconds: int) -> list[Row]:
    """Claim due jobs across users (SECURITY DEFINER): the claimed job rows. Due-ness and the
    lease are on the database's clock (migration 0095)."""
    return conn.execute(
        "SELECT" + _JOB_COLUMNS + " FROM oracle.claim_due_scan_jobs(%s, %s, %s) j",
        (instance, limit, lease_seconds),
    ).fetchall()


def claim_job(conn: Conn, *, job_id: str, instance: str, lease_seconds: int) -> Row | None:
    """Claim one named job of the transaction's user: its row, None when missing or leased by another."""
    return conn.execute(
        "SELECT" + _JOB_COLUMNS + " FROM oracle.claim_scan_job(%s, %s, %s) j",
        (job_id, instance, lease_seconds),
    ).fetchone()


def lock_job_fenced(conn: Conn, *, job_id: str, fencing_token: int) -> Row | None:
    """The job row locked FOR UPDATE, only while ``fencing_token`` is still the job's token."""
    return conn.execute(
        "SELECT" + _JOB_COLUMNS + " FROM oracle.scan_jobs j WHERE j.job_id = %s AND j.fencing_token = %s FOR UPDATE",
        (job_id, fencing_token),
    ).fetchone()


def extend_lease(conn: Conn, *, job_id: str, lease_seconds: int) -> None:
    """The lease runs ``lease_seconds`` from now on the database's clock (the caller holds the
    job's row lock: lock_job_fenced)."""
    conn.execute(
        "UPDATE oracle.scan_jobs SET lock_expires_at = t.now + make_interval(secs => %s), heartbeat_at = t.now"
        " FROM (SELECT oracle.clock() AS now) t WHERE job_id = %s",
        (lease_seconds, job_id),
    )


def finish_job(
    conn: Conn, *, job_id: str, interval: timedelta, last_run_at: datetime, outcomes: list[dict[str, Any]]
) -> datetime:
    """A successful run: reschedule ``interval`` from now on the database's clock (the due time
    every instance's claim compares with it), clear the failure count, record outcomes, release
    the lease. Returns the new due time."""
    row = conn.execute(
        "UPDATE oracle.scan_jobs SET next_run_at = (SELECT oracle.clock()) + %s, last_run_at = %s, attempts = 0,"
        " last_error = '', last_outcomes = %s, locked_by = NULL, lock_expires_at = NULL WHERE job_id = %s"
        " RETURNING next_run_at",
        (interval, last_run_at, Jsonb(outcomes), job_id),
    ).fetchone()
    if row is None:
        raise InvariantBroken("row is missing")
    return row["next_run_at"]  # type: ignore[no-any-return]


def fail_job(
    conn: Conn, *, job_id: str, attempts: int, last_error: str, delay: timedelta, not_before: datetime | None
) -> datetime:
    """A failed run: count it, say why, retry ``delay`` from now on the database's clock (not
    before ``not_before``), release the lease. Returns the new due time."""
    row = conn.execute(
        "UPDATE oracle.scan_jobs SET attempts = %s, last_error = %s,"
        " next_run_at = GREATEST((SELECT oracle.clock()) + %s, %s::timestamptz),"
        " locked_by = NULL, lock_expires_at = NULL WHERE job_id = %s RETURNING next_run_at",
        (attempts, last_error[:4000], delay, not_before, job_id),
    ).fetchone()
    if row is None:
        raise InvariantBroken("row is missing")
    return row["next_run_at"]  # type: ignore[no-any-return]


def set_last_outcomes(conn: Conn, *, job_id: str, outcomes: list[dict[str, Any]]) -> None:
    conn.execute("UPDATE oracle.scan_jobs SET last_outcomes = %s WHERE job_id = %s", (Jsonb(outcomes), job_id))


# ------------------------------------------------------------------------------- policy
def global_trading_enabled(conn: Conn) -> bool:
    """The global kill switch (account_settings, read-only for the scanner); no row = on."""
    row = conn.execute("SELECT trading_enabled FROM oracle.account_settings WHERE id").fetchone()
    return True if row is None else bool(row["trading_enabled"])


def get_policy(conn: Conn, user_id: str) -> Row | None:
    """The user's live trading policy (read-only for the scanner)."""
    return conn.execute(
        "SELECT user_id::text AS user_id, version, allowed_markets::text[] AS allowed_markets, min_order_eur,"
        " max_order_eur, min_confidence::integer AS min_confidence, cooldown_seconds, anti_flip_seconds,"
        " daily_trade_cap, hourly_trade_cap, daily_notional_cap_eur, price_guard_pct, auto_execute,"
        " trading_enabled, updated_at, updated_by FROM oracle.trading_policies WHERE user_id = %s",
        (user_id,),
    ).fetchone()


# ------------------------------------------------------------------------------- proposals
def insert_proposal(
    conn: Conn,
    *,
    proposal_id: str,
    user_id: str,
    job_id: str | None,
    market: str,
    side: str,
    amount_quote: Decimal,
    confidence: int,
    rationale: str,
    analyst: str,
    model: str,
    market_snapshot: dict[str, Any],
    policy_snapshot: dict[str, Any],
    lifetime: timedelta,
    fencing_token: int | None,
) -> Row:
    """Insert an open proposal. The database stamps it (migration 0096): created_at is its
    clock at the insert, and ``lifetime`` is capped by its ``proposal_max_lifetime``."""
    row = conn.execute(
        "INSERT INTO oracle.trade_proposals AS p (proposal_id, user_id, job_id, market, side, amount_quote,"  # noqa: S608 -- constant column fragments, values bound
        " confidence, rationale, analyst, model, market_snapshot, policy_snapshot, status, created_at, expires_at,"
        " fencing_token) SELECT %(proposal_id)s, %(user_id)s, %(job_id)s, %(market)s, %(side)s, %(amount_quote)s,"
        " %(confidence)s, %(rationale)s, %(analyst)s, %(model)s, %(market_snapshot)s, %(policy_snapshot)s, 'open',"
        " t.now, t.now + %(lifetime)s, %(fencing_token)s FROM (SELECT oracle.clock() AS now) t RETURNING"
        # just written: open, and it expires after its creation (the table's CHECK)
        + _PROPOSAL_COLUMNS.format(now="p.created_at"),
        {
            "proposal_id": proposal_id,
            "user_id": user_id,
            "job_id": job_id,
            "market": market,
            "side": side,
            "amount_quote": amount_quote,
            "confidence": confidence,
            "rationale": rationale,
            "analyst": analyst,
            "model": model,
            "market_snapshot": Jsonb(market_snapshot),
            "policy_snapshot": Jsonb(policy_snapshot),
            "lifetime": lifetime,
            "fencing_token": fencing_token,
        },
    ).fetchone()
    if row is None:
        raise InvariantBroken("row is missing")
    return row


def get_proposal(conn: Conn, proposal_id: str) -> Row | None:
    return conn.execute(
        "SELECT"
        + _PROPOSAL_COLUMNS.format(now="t.now")
        + " FROM oracle.trade_proposals p"
        + _READ_CLOCK
        + " WHERE p.proposal_id = %(id)s",
        {"id": proposal_id},
    ).fetchone()


def list_proposals(conn: Conn, *, status: str | None, after: tuple[datetime, str] | None, limit: int) -> list[Row]:
    """The user's proposals newest first by (created_at, proposal_id); ``status`` as seen now on
    the database's clock."""
    where = []
    params: dict[str, Any] = {"limit": limit}
    if status == "open":
        where.append("p.status = 'open' AND p.expires_at > t.now")
    elif status == "expired":
        where.append("(p.status = 'expired' OR p.expires_at <= t.now)")
    if after is not None:
        where.append("(p.created_at, p.proposal_id) < (%(after_at)s, %(after_id)s::uuid)")
        params.update(after_at=after[0], after_id=after[1])
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    return conn.execute(
        "SELECT"
        + _PROPOSAL_COLUMNS.format(now="t.now")
        + " FROM oracle.trade_proposals p"
        + _READ_CLOCK
        + clause
        + " ORDER BY p.created_at DESC, p.proposal_id DESC LIMIT %(limit)s",
        params,
    ).fetchall()


def expire_due_proposals(conn: Conn) -> int:
    """Mark every user's open proposals past expiry (on the database's clock) as expired
    (SECURITY DEFINER); how many."""
    row = conn.execute("SELECT oracle.expire_due_proposals() AS n").fetchone()
    return int(row["n"]) if row else 0
