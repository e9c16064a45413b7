"""Every SQL statement of the executor.

Functions take a connection inside ``Database.transaction(user_id)``: row-level security limits
every table to that user, and cross-user figures go through the SECURITY DEFINER functions of
migrations 0001 and 0020. Every time a decision rests on is the database's clock
(``oracle.clock()``, migration 0095), read after the deciding transaction's locks are held
(shared.db.locks.lock_user returns it) and passed on as a parameter within that transaction:
docs/design.md#one-clock-per-decision; the reconciler's schedule (migration 0027) is stamped with
the database's clock too. Which executions count toward the limits (``oracle.execution_counts``),
which are final (``oracle.execution_is_final``) and which the reconciler still looks at
(``oracle.execution_needs_reconcile``) are SQL functions, the one home of each rule; this module
only calls them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from services.executor.model import Side, Status
from shared import audit
from shared.db import Conn
from shared.errors import InvariantBroken
from shared.policy import Policy

Row = dict[str, Any]

# The policy columns, with the domain array cast so the driver returns a list of str.
_POLICY_COLUMNS = (
    "user_id, version, allowed_markets::text[] AS allowed_markets, min_order_eur, max_order_eur, min_confidence,"
    " cooldown_seconds, anti_flip_seconds, daily_trade_cap, hourly_trade_cap, daily_notional_cap_eur,"
    " price_guard_pct, auto_execute, trading_enabled, updated_at, updated_by, max_daily_loss_eur, max_drawdown_eur"
)

_COUNTING = "oracle.execution_counts(status, filled_amount)"

# Columns compare_and_set_status may change besides status (a fixed list: never caller text in SQL).
_SETTABLE = frozenset(
    {
        "exchange_order_id",
        "filled_amount",
        "filled_amount_quote",
        "fee_paid",
        "fee_currency",
        "request",
        "response",
        "error",
        "submitting_at",
        "sign_deadline_ms",
        "fee_pending",
        "found_late_until",
    }
)
_JSON_COLUMNS = frozenset({"request", "response", "error"})


# ------------------------------------------------------------------ proposals


def proposal(conn: Conn, proposal_id: str) -> Row | None:
    """The user's proposal (another user's is invisible: row-level security), with ``read_at``:
    the database's clock when it was read."""
    return conn.execute(
        "SELECT proposal_id, user_id, market, side, amount_quote, confidence, status, created_at, expires_at,"
        " market_snapshot, oracle.clock() AS read_at FROM oracle.trade_proposals WHERE proposal_id = %s",
        (proposal_id,),
    ).fetchone()


# ------------------------------------------------------------------ executions


def execution_by_proposal(conn: Conn, proposal_id: str) -> Row | None:
    """The user's execution of a proposal, if it was ever claimed."""
    return conn.execute("SELECT * FROM oracle.trade_executions WHERE proposal_id = %s", (proposal_id,)).fetchone()


def execution(conn: Conn, execution_id: str) -> Row | None:
    """One of the user's executions."""
    return conn.execute("SELECT * FROM oracle.trade_executions WHERE execution_id = %s", (execution_id,)).fetchone()


def insert_claim(
    conn: Conn,
    *,
    execution_id: str,
    user_id: str,
    proposal_id: str,
    mode: str,
    market: str,
    side: Side,
    amount_quote: Decimal,
    client_order_id: str,
    override_cooldown: bool,
    override_anti_flip: bool,
    principal: str,
    preflight: Mapping[str, Any],
    now: datetime,
    service: str,
    validators: list[dict[str, Any]],
    request: Mapping[str, Any],
    sign_deadline_ms: int,
    amount_base: Decimal | None = None,
) -> Row | None:
    """The claim, already SUBMITTING, and its two audit events (``execution.claimed``, then the
    CLAIMED → SUBMITTING transition with the order ``request`` and its signing deadline), in one
    statement: one row per (user, proposal) whatever the number of callers; None (and no event)
    if it exists. ``amount_base`` is a SELL's checked size in the base asset (what is sent). The
    claimed event's figures are the stored row's, as the database wrote them."""
    submitting, submitting_params = audit.Event(
        service,
        "execution.transition",
        execution_id,
        principal,
        {
            "from": Status.CLAIMED.value,
            "to": Status.SUBMITTING.value,
            "proposal_id": proposal_id,
            "exchange_request": dict(request),
            "sign_deadline_ms": sign_deadline_ms,
        },
    ).call()
    # The select list is evaluated left to right: the claimed event precedes the transition's.
    return conn.execute(
        "WITH claim AS (INSERT INTO oracle.trade_executions (execution_id, user_id, proposal_id, mode, market, side,"  # noqa: S608 -- only constant module-level fragments
        " amount_quote, status, client_order_id, override_cooldown, override_anti_flip, principal,"
        " preflight, claimed_at, updated_at, amount_base, submitting_at, request, sign_deadline_ms)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, 'SUBMITTING', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (user_id, proposal_id) DO NOTHING RETURNING *)"
        f" SELECT claim.*, {audit.APPEND_FUNCTION}(%s, 'execution.claimed', claim.execution_id::text, claim.principal,"
        " jsonb_build_object('proposal_id', claim.proposal_id::text, 'market', claim.market::text,"
        " 'side', claim.side::text, 'amount_quote', claim.amount_quote::text,"
        " 'client_order_id', claim.client_order_id::text, 'mode', claim.mode, 'validators', %s::jsonb))"
        f" AS audit_sequence, {submitting} AS submitting_sequence FROM claim",
        (
            execution_id,
            user_id,
            proposal_id,
            mode,
            market,
            side.value,
            amount_quote,
            client_order_id,
            override_cooldown,
            override_anti_flip,
            principal,
            Jsonb(dict(preflight)),
            now,
            now,
            amount_base,
            now,
            Jsonb(dict(request)),
            sign_deadline_ms,
            service,
            Jsonb(validators),
            *submitting_params,
        ),
    ).fetchone()


def compare_and_set_status(
    conn: Conn, execution_id: str, *, expected: Status, new: Status, now: datetime, changes: Mapping[str, Any]
) -> Row | None:
    """``UPDATE … WHERE status = expected``: the updated row, or None when the status moved on."""
    unknown = set(changes) - _SETTABLE
    if unknown:
        raise ValueError(f"not settable: {sorted(unknown)}")
    # a move is progress: the execution is due again at once, its failure count starts over
    assignments: list[sql.Composable] = [
        sql.SQL("status = %s"),
        sql.SQL("updated_at = %s"),
        sql.SQL("next_reconcile_at = NULL, reconcile_attempts = 0, reconcile_error = NULL"),
    ]
    params: list[Any] = [new.value, now]
    for column, value in changes.items():
        assignments.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
        params.append(Jsonb(value) if column in _JSON_COLUMNS and value is not None else value)
    query = sql.SQL("UPDATE oracle.trade_executions SET {} WHERE execution_id = %s AND status = %s RETURNING *").format(
        sql.SQL(", ").join(assignments)
    )
    return conn.execute(query, (*params, execution_id, expected.value)).fetchone()


def set_fees(
    conn: Conn, execution_id: str, *, fee_paid: Decimal, fee_currency: str, fee_pending: bool, response: Any
) -> Row | None:
    """A final execution's fee total, once its fills' fees settled (only while ``fee_pending``)."""
    return conn.execute(
        "UPDATE oracle.trade_executions SET fee_paid = %s, fee_currency = %s, fee_pending = %s, response = %s,"
        " next_reconcile_at = NULL, reconcile_attempts = 0, reconcile_error = NULL"
        " WHERE execution_id = %s AND fee_pending RETURNING *",
        (fee_paid, fee_currency, fee_pending, Jsonb(response), execution_id),
    ).fetchone()


def defer_reconcile(
    conn: Conn, execution_id: str, *, base_seconds: float, max_seconds: float, error: str | None
) -> None:
    """Push an execution back in the reconciler's queue: due again after ``base_seconds`` ×
    2^(attempts so far), at most ``max_seconds`` (database clock), ``error`` remembered. With
    ``base_seconds`` 0 it only goes to the back of the queue."""
    conn.execute(
        "UPDATE oracle.trade_executions SET reconcile_attempts = reconcile_attempts + 1, reconcile_error = %s,"
        " next_reconcile_at = clock_timestamp()"
        " + make_interval(secs => LEAST(%s, %s * power(2, LEAST(reconcile_attempts, 30))))"
        " WHERE execution_id = %s",
        (None if error is None else error[:500], max_seconds, base_seconds, execution_id),
    )


def requeue(conn: Conn, execution_id: str) -> None:
    """Send an execution examined without a change to the back of the reconciler's queue."""
    conn.execute(
        "UPDATE oracle.trade_executions SET next_reconcile_at = clock_timestamp() WHERE execution_id = %s",
        (execution_id,),
    )


def watch_found_late(conn: Conn, execution_id: str, *, seconds: float) -> None:
    """A FAILED PROVEN_ABSENT execution: looked up again until ``seconds`` from now (database clock)."""
    conn.execute(
        "UPDATE oracle.trade_executions SET found_late_until = clock_timestamp() + make_interval(secs => %s)"
        " WHERE execution_id = %s",
        (seconds, execution_id),
    )


def list_executions(conn: Conn, *, limit: int, before: tuple[datetime, str] | None, status: Status | None) -> list[Row]:
    """A page of the user's executions, newest claim first (keyset on claimed_at, execution_id)."""
    clauses = [sql.SQL("TRUE")]
    params: list[Any] = []
    if before is not None:
        clauses.append(sql.SQL("(claimed_at, execution_id) < (%s, %s)"))
        params += [before[0], before[1]]
    if status is not None:
        clauses.append(sql.SQL("status = %s"))
        params.append(status.value)
    query = sql.SQL(
        "SELECT * FROM oracle.trade_executions WHERE {} ORDER BY claimed_at DESC, execution_id DESC LIMIT %s"
    ).format(sql.SQL(" AND ").join(clauses))
    return conn.execute(query, (*params, limit)).fetchall()  # type: ignore[call-overload, no-any-return]


def to_reconcile_of_mode(conn: Conn, mode: str, limit: int, *, lease_seconds: float) -> list[tuple[str, str]]:
    """(execution_id, user_id) of the executions of ``mode`` the reconciler should look at now,
    across users, longest-waiting first, each leased for ``lease_seconds`` so that other replicas
    take other rows meanwhile (migration 0027)."""
    rows = conn.execute(
        "SELECT * FROM oracle.executions_to_reconcile(%s, %s, %s)", (mode, limit, lease_seconds)
    ).fetchall()
    return [(str(r["execution_id"]), r["user_id"]) for r in rows]


def to_reconcile_of_user(conn: Conn, mode: str, limit: int) -> list[str]:
    """Ids of the user's executions of ``mode`` the reconciler still has something to do for, due
    or not (an operator's on-demand pass does not wait for the schedule), longest-waiting first."""
    rows = conn.execute(
        "SELECT execution_id FROM oracle.trade_executions WHERE mode = %s"
        " AND oracle.execution_needs_reconcile(status, found_late_until, fee_pending)"
        " AND (found_late_until IS NULL OR status <> 'FAILED' OR found_late_until > clock_timestamp())"
        " ORDER BY next_reconcile_at NULLS FIRST, updated_at LIMIT %s",
        (mode, limit),
    ).fetchall()
    return [str(r["execution_id"]) for r in rows]


# ------------------------------------------------------------------ what the validators read


@dataclass(frozen=True)
class UserFigures:
    """The user's counting executions of one mode, as the validators need them."""

    last_on_market_at: datetime | None
    last_opposite_at: datetime | None
    trades_today: int
    trades_last_hour: int
    notional_today_eur: Decimal


def user_figures(
    conn: Conn, *, mode: str, market: str, side: Side, day_start: datetime, hour_start: datetime, since: datetime
) -> UserFigures:
    """Cooldown, anti-flip, caps and notional figures of the transaction's user.

    Windows are closed at their start: the UTC day counts ``claimed_at >= day_start`` (00:00:00),
    the hourly window ``claimed_at >= hour_start`` (now - 60 min, so a claim exactly 60 minutes
    old still counts). Only claims from ``since`` on are read (the earliest start of every
    window the validators look at, cooldown and anti-flip included): a bounded index range, never
    the user's whole history; an older claim is outside every window anyway."""
    row = conn.execute(
        "SELECT max(claimed_at) FILTER (WHERE market = %(market)s) AS last_on_market,"  # noqa: S608 -- only constant module-level fragments
        " max(claimed_at) FILTER (WHERE market = %(market)s AND side = %(opposite)s) AS last_opposite,"
        " count(*) FILTER (WHERE claimed_at >= %(day)s) AS today,"
        " count(*) FILTER (WHERE claimed_at >= %(hour)s) AS last_hour,"
        " COALESCE(sum(amount_quote) FILTER (WHERE claimed_at >= %(day)s), 0) AS notional_today"
        f" FROM oracle.trade_executions WHERE claimed_at >= %(since)s AND mode = %(mode)s AND {_COUNTING}",
        {
            "market": market,
            "opposite": side.opposite.value,
            "day": day_start,
            "hour": hour_start,
            "mode": mode,
            "since": since,
        },
    ).fetchone()
    if row is None:
        raise InvariantBroken("the user's execution figures returned no row")
    return UserFigures(
        last_on_market_at=row["last_on_market"],
        last_opposite_at=row["last_opposite"],
        trades_today=int(row["today"]),
        trades_last_hour=int(row["last_hour"]),
        notional_today_eur=Decimal(row["notional_today"]),
    )


@dataclass(frozen=True)
class AccountFigures:
    """Account-wide figures across users, read under the account row lock."""

    notional_today_eur: Decimal
    in_flight_eur: Decimal


@dataclass(frozen=True)
class AccountForClaim:
    """The account settings row, locked until commit, and the account-wide figures read after
    the lock was granted (oracle.lock_account_for_claim, migration 0028)."""

    trading_enabled: bool
    daily_notional_cap_eur: Decimal
    daily_loss_limit_eur: Decimal | None
    trading_state: str
    figures: AccountFigures


def lock_account_for_claim(
    conn: Conn,
    *,
    mode: str,
    side: Side,
    market: str,
    day_start: datetime,
    day_end: datetime,
    balance_at: datetime,
) -> AccountForClaim:
    """Lock the account settings row until commit and read, in the same round trip but with a
    snapshot taken after the lock was granted, the account's claimed EUR this UTC day and the
    same side's EUR in flight since the balance was read (for a sell, of this market only).

    Every claim takes it after the user's lock (lock order: account advisory lock shared, user
    lock, account row), so the account-wide figures and the cap and kill switch they are
    compared with are read and used without another user's claim or an UpdateAccountSettings
    slipping in between. Both figures are index ranges bounded by what they decide (migration
    0028), never by history: the row is held by every claim of the account."""
    row = conn.execute(
        "SELECT * FROM oracle.lock_account_for_claim(%s, %s, %s, %s, %s, %s)",
        (mode, side.value, market if side is Side.SELL else None, day_start, day_end, balance_at),
    ).fetchone()
    if row is None:
        raise InvariantBroken("oracle.lock_account_for_claim returned no row")
    limit = row["daily_loss_limit_eur"]
    return AccountForClaim(
        trading_enabled=bool(row["trading_enabled"]),
        daily_notional_cap_eur=Decimal(row["daily_notional_cap_eur"]),
        daily_loss_limit_eur=None if limit is None else Decimal(limit),
        trading_state=str(row["trading_state"]),
        figures=AccountFigures(
            notional_today_eur=Decimal(row["notional_today_eur"]), in_flight_eur=Decimal(row["in_flight_eur"])
        ),
    )


def account_figures(
    conn: Conn, *, mode: str, side: Side, market: str, day_start: datetime, day_end: datetime, balance_at: datetime
) -> AccountFigures:
    """The account's claimed EUR this UTC day, and the same side's EUR in flight since the
    balance was fetched (for a sell, of this market only), unlocked: what the operator's money
    view shows. A claim reads them with the row locked (:func:`lock_account_for_claim`)."""
    notional = conn.execute(
        "SELECT claimed_eur FROM oracle.account_notional(%s, %s, %s)", (mode, day_start, day_end)
    ).fetchone()
    in_flight = conn.execute(
        "SELECT oracle.account_in_flight_eur(%s, %s, %s, %s) AS eur",
        (mode, side.value, market if side is Side.SELL else None, balance_at),
    ).fetchone()
    if notional is None or in_flight is None:
        raise InvariantBroken("oracle.account_notional or oracle.account_in_flight_eur returned no row")
    return AccountFigures(
        notional_today_eur=Decimal(notional["claimed_eur"]),
        in_flight_eur=Decimal(in_flight["eur"]),
    )


def paper_wallet(conn: Conn, market: str) -> tuple[Decimal, Decimal]:
    """Paper mode: (EUR spent net, base asset of ``market`` held) by paper fills, account-wide."""
    row = conn.execute("SELECT eur_spent, base_held FROM oracle.paper_wallet(%s)", (market,)).fetchone()
    if row is None:
        raise InvariantBroken("oracle.paper_wallet returned no row")
    return Decimal(row["eur_spent"]), Decimal(row["base_held"])


# ------------------------------------------------------------------ policies and kill switches


def policy(conn: Conn) -> Row | None:
    """The transaction user's stored policy."""
    return conn.execute(f"SELECT {_POLICY_COLUMNS} FROM oracle.trading_policies").fetchone()  # noqa: S608 -- only constant module-level fragments


_ACCOUNT_COLUMNS = (
    "trading_enabled, daily_notional_cap_eur, daily_loss_limit_eur, trading_state, state_reason, version,"
    " updated_at, updated_by"
)


def account_settings(conn: Conn) -> Row:
    """The account-wide settings row (kill switch, daily notional cap, version), not locked."""
    row = conn.execute(f"SELECT {_ACCOUNT_COLUMNS} FROM oracle.account_settings WHERE id").fetchone()  # noqa: S608 -- only constant module-level fragments
    if row is None:
        raise InvariantBroken("oracle.account_settings has no row (migration 0001 inserts it)")
    return row


def update_account_settings(
    conn: Conn,
    *,
    daily_notional_cap_eur: Decimal,
    daily_loss_limit_eur: Decimal | None,
    expected_version: int,
    now: datetime,
    by: str,
) -> Row | None:
    """Set the account daily notional cap and daily loss limit if the row's version is still
    ``expected_version`` (version + 1); None when it moved on. The kill switch and the trading
    state are not touched."""
    return conn.execute(
        "UPDATE oracle.account_settings SET daily_notional_cap_eur = %s, daily_loss_limit_eur = %s,"  # noqa: S608 -- only constant module-level fragments
        " version = version + 1, updated_at = %s,"
        f" updated_by = %s WHERE id AND version = %s RETURNING {_ACCOUNT_COLUMNS}",
        (daily_notional_cap_eur, daily_loss_limit_eur, now, by, expected_version),
    ).fetchone()


def insert_policy(conn: Conn, p: Policy, *, now: datetime, by: str) -> Row:
    """Store a user's first policy (version 1)."""
    row = conn.execute(
        "INSERT INTO oracle.trading_policies (user_id, version, allowed_markets, min_order_eur, max_order_eur,"  # noqa: S608 -- only constant module-level fragments
        " min_confidence, cooldown_seconds, anti_flip_seconds, daily_trade_cap, hourly_trade_cap,"
        " daily_notional_cap_eur, price_guard_pct, auto_execute, max_daily_loss_eur, max_drawdown_eur,"
        " trading_enabled, updated_at, updated_by)"
        " VALUES (%s, 1, %s::oracle.market[], %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        f" RETURNING {_POLICY_COLUMNS}",
        (p.user_id, *_policy_values(p), p.trading_enabled, now, by),
    ).fetchone()
    if row is None:
        raise InvariantBroken("INSERT INTO oracle.trading_policies … RETURNING returned no row")
    return row


def update_policy(conn: Conn, p: Policy, *, expected_version: int, now: datetime, by: str) -> Row | None:
    """Replace a policy if its version is still ``expected_version`` (the kill switch is kept)."""
    return conn.execute(
        "UPDATE oracle.trading_policies SET version = version + 1, allowed_markets = %s::oracle.market[], min_order_eur = %s,"  # noqa: S608 -- only constant module-level fragments
        " max_order_eur = %s, min_confidence = %s, cooldown_seconds = %s, anti_flip_seconds = %s,"
        " daily_trade_cap = %s, hourly_trade_cap = %s, daily_notional_cap_eur = %s, price_guard_pct = %s,"
        " auto_execute = %s, max_daily_loss_eur = %s, max_drawdown_eur = %s, updated_at = %s, updated_by = %s"
        " WHERE version = %s"
        f" RETURNING {_POLICY_COLUMNS}",
        (*_policy_values(p), now, by, expected_version),
    ).fetchone()


def set_user_trading_enabled(conn: Conn, enabled: bool, *, now: datetime, by: str) -> Row | None:
    """Flip the user's kill switch on the stored policy (version + 1); None when no policy exists."""
    return conn.execute(
        "UPDATE oracle.trading_policies SET trading_enabled = %s, version = version + 1, updated_at = %s,"  # noqa: S608 -- only constant module-level fragments
        " updated_by = %s"
        f" RETURNING {_POLICY_COLUMNS}",
        (enabled, now, by),
    ).fetchone()


def set_global_trading_enabled(conn: Conn, enabled: bool, *, now: datetime, by: str) -> Row:
    """Flip the global kill switch (the account settings' version + 1, as a user's switch bumps
    the policy's); returns the row."""
    row = conn.execute(
        "UPDATE oracle.account_settings SET trading_enabled = %s, version = version + 1, updated_at = %s,"  # noqa: S608 -- only constant module-level fragments
        f" updated_by = %s WHERE id RETURNING {_ACCOUNT_COLUMNS}",
        (enabled, now, by),
    ).fetchone()
    if row is None:
        raise InvariantBroken("oracle.account_settings has no row (migration 0001 inserts it)")
    return row


def _policy_values(p: Policy) -> tuple[Any, ...]:
    return (
        list(p.allowed_markets),
        p.min_order_eur,
        p.max_order_eur,
        p.min_confidence,
        p.cooldown_seconds,
        p.anti_flip_seconds,
        p.daily_trade_cap,
        p.hourly_trade_cap,
        p.daily_notional_cap_eur,
        p.price_guard_pct,
        p.auto_execute,
        p.max_daily_loss_eur,
        p.max_drawdown_eur,
    )


# ------------------------------------------------------------------ audit trail


def list_audit_events(conn: Conn, *, subject_id: str, after_sequence: int, limit: int) -> list[Row]:
    """A page of the user's audit events in chain order."""
    clauses = [sql.SQL("sequence > %s")]
    params: list[Any] = [after_sequence]
    if subject_id:
        clauses.append(sql.SQL("subject_id = %s"))
        params.append(subject_id)
    query = sql.SQL(
        "SELECT sequence, user_id, service, kind, subject_id, principal, payload, created_at, prev_hash, hash"
        " FROM oracle.audit_events WHERE {} ORDER BY sequence LIMIT %s"
    ).format(sql.SQL(" AND ").join(clauses))
    return conn.execute(query, (*params, limit)).fetchall()  # type: ignore[call-overload, no-any-return]
