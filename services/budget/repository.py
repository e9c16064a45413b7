"""Every SQL statement of the budget service.

Each function runs on a connection from ``Database.transaction(user_id)``, so row-level security
limits it to that user's rows (another user's reservation reads as missing). Times are the
database's clock, ``oracle.clock()`` (migration 0095), read after the deciding transaction's
lock is held (shared.db.locks.lock_user returns it) and passed on within that transaction, or
read by the statement itself: docs/design.md#one-clock-per-decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.budget.reservations import Reservation, Status
from services.budget.windows import Bounds, Limits, Usage
from shared import audit
from shared.db import Conn
from shared.errors import InvariantBroken

_COLUMNS = (
    "reservation_id::text AS reservation_id, user_id::text AS user_id, purpose, model, status, max_tokens,"
    " estimated_tokens, estimated_cost_micros, prompt_tokens, completion_tokens, cost_micros,"
    " reserved_at, expires_at"
)


@dataclass(frozen=True)
class NewReservation:
    """A granted reservation about to be inserted."""

    reservation_id: str
    user_id: str
    purpose: str
    model: str
    max_tokens: int
    estimated_tokens: int
    estimated_cost_micros: int
    reserved_at: datetime
    expires_at: datetime


def _reservation(row: dict[str, Any]) -> Reservation:
    return Reservation(
        reservation_id=row["reservation_id"],
        user_id=row["user_id"],
        purpose=row["purpose"],
        model=row["model"],
        status=Status(row["status"]),
        max_tokens=row["max_tokens"],
        estimated_tokens=row["estimated_tokens"],
        estimated_cost_micros=row["estimated_cost_micros"],
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        cost_micros=row["cost_micros"],
        reserved_at=row["reserved_at"],
        expires_at=row["expires_at"],
    )


def read_limits(conn: Conn, user_id: str) -> Limits | None:
    """The user's own limits; None when they have none (the defaults apply)."""
    row = conn.execute(
        "SELECT daily_calls, hourly_calls, daily_tokens, daily_cost_micros FROM oracle.budget_limits"
        " WHERE user_id = %s",
        (user_id,),
    ).fetchone()
    return None if row is None else Limits(**row)


def write_limits(conn: Conn, user_id: str, limits: Limits, now: datetime) -> None:
    """Insert or replace the user's limits."""
    conn.execute(
        "INSERT INTO oracle.budget_limits (user_id, daily_calls, hourly_calls, daily_tokens, daily_cost_micros,"
        " updated_at) VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (user_id) DO UPDATE SET daily_calls = EXCLUDED.daily_calls,"
        " hourly_calls = EXCLUDED.hourly_calls, daily_tokens = EXCLUDED.daily_tokens,"
        " daily_cost_micros = EXCLUDED.daily_cost_micros, updated_at = EXCLUDED.updated_at",
        (user_id, limits.daily_calls, limits.hourly_calls, limits.daily_tokens, limits.daily_cost_micros, now),
    )


def read_limits_and_usage(conn: Conn, user_id: str, bounds: Bounds) -> tuple[Limits | None, Usage]:
    """The user's own limits (None when they have none: the defaults apply) and what the user's
    counted rows add up to in each window, in one statement (one snapshot: a SetLimits that
    commits meanwhile is seen whole or not at all).

    Counted: every status but released, expired included (its call may have happened), by
    reservation time. Tokens and cost: actuals of committed rows, estimates of the others.
    Windows have no upper bound: a row stamped later than ``bounds.now`` counts too, which can
    only make the answer stricter. Only rows of the windows are read (reserved_at from the
    earlier window start on, an index range), never the user's whole history.
    """
    row = conn.execute(
        "SELECT l.daily_calls AS limit_daily_calls, l.hourly_calls AS limit_hourly_calls,"
        " l.daily_tokens AS limit_daily_tokens, l.daily_cost_micros AS limit_daily_cost_micros, u.*"
        " FROM (SELECT count(*) FILTER (WHERE reserved_at >= %(day_start)s) AS daily_calls,"
        "   count(*) FILTER (WHERE reserved_at > %(hour_start)s) AS hourly_calls,"
        "   COALESCE(sum(CASE WHEN status = 'committed' THEN prompt_tokens + completion_tokens"
        "     ELSE estimated_tokens END) FILTER (WHERE reserved_at >= %(day_start)s), 0) AS daily_tokens,"
        "   COALESCE(sum(CASE WHEN status = 'committed' THEN cost_micros ELSE estimated_cost_micros END)"
        "     FILTER (WHERE reserved_at >= %(day_start)s), 0) AS daily_cost_micros"
        "   FROM oracle.gpt_usage_log"
        "   WHERE user_id = %(user_id)s AND status <> 'released'"
        "     AND reserved_at >= LEAST(%(day_start)s, %(hour_start)s)) u"
        " LEFT JOIN oracle.budget_limits l ON l.user_id = %(user_id)s",
        {"user_id": user_id, "day_start": bounds.day_start, "hour_start": bounds.hour_start},
    ).fetchone()
    if row is None:
        raise InvariantBroken("row is missing")
    limits = (
        None
        if row["limit_daily_calls"] is None
        else Limits(
            daily_calls=row["limit_daily_calls"],
            hourly_calls=row["limit_hourly_calls"],
            daily_tokens=row["limit_daily_tokens"],
            daily_cost_micros=row["limit_daily_cost_micros"],
        )
    )
    usage = Usage(
        daily_calls=int(row["daily_calls"]),
        hourly_calls=int(row["hourly_calls"]),
        daily_tokens=int(row["daily_tokens"]),
        daily_cost_micros=int(row["daily_cost_micros"]),
    )
    return limits, usage


def hourly_reserved_at(conn: Conn, user_id: str, bounds: Bounds, offset: int) -> datetime | None:
    """Reservation time of the counted row at ``offset`` (0 = oldest) in the rolling hour."""
    row = conn.execute(
        "SELECT reserved_at FROM oracle.gpt_usage_log"
        " WHERE user_id = %s AND status <> 'released' AND reserved_at > %s"
        " ORDER BY reserved_at, reservation_id OFFSET %s LIMIT 1",
        (user_id, bounds.hour_start, max(offset, 0)),
    ).fetchone()
    return None if row is None else row["reserved_at"]  # type: ignore[no-any-return]


def insert_reservation(conn: Conn, new: NewReservation, event: audit.Event) -> Reservation:
    """Insert a ``reserved`` row and append its audit ``event``, in one statement."""
    append, event_params = event.call()
    row = conn.execute(
        "WITH changed AS (INSERT INTO oracle.gpt_usage_log (reservation_id, user_id, purpose, model, status,"  # noqa: S608 -- constant fragments, values bound
        " max_tokens, estimated_tokens, estimated_cost_micros, reserved_at, expires_at)"
        " VALUES (%s, %s, %s, %s, 'reserved', %s, %s, %s, %s, %s)"
        f" RETURNING {_COLUMNS}) SELECT changed.*, {append} AS audit_sequence FROM changed",
        (
            new.reservation_id,
            new.user_id,
            new.purpose,
            new.model,
            new.max_tokens,
            new.estimated_tokens,
            new.estimated_cost_micros,
            new.reserved_at,
            new.expires_at,
            *event_params,
        ),
    ).fetchone()
    if row is None:
        raise InvariantBroken("row is missing")
    return _reservation(row)


def lock_reservation(conn: Conn, user_id: str, reservation_id: str) -> tuple[Reservation, datetime] | None:
    """The user's reservation, row-locked until the transaction ends, and the database's clock
    (for its TTL); None when unknown."""
    row = conn.execute(
        f"SELECT {_COLUMNS}, oracle.clock() AS now FROM oracle.gpt_usage_log"  # noqa: S608 -- constant column fragments, values bound
        " WHERE user_id = %s AND reservation_id = %s FOR UPDATE",
        (user_id, reservation_id),
    ).fetchone()
    return None if row is None else (_reservation(row), row["now"])


def mark_committed(
    conn: Conn,
    reservation_id: str,
    *,
    expected: Status,
    prompt_tokens: int,
    completion_tokens: int,
    cost_micros: int,
    event: audit.Event,
) -> Reservation | None:
    """Compare-and-set ``expected`` → committed with the actual usage, and append its audit
    ``event``, in one statement; None (and no event) when the status moved."""
    append, event_params = event.call()
    row = conn.execute(
        "WITH changed AS (UPDATE oracle.gpt_usage_log SET status = 'committed', prompt_tokens = %s,"  # noqa: S608 -- constant fragments, values bound
        " completion_tokens = %s, cost_micros = %s, committed_at = oracle.clock()"
        f" WHERE reservation_id = %s AND status = %s RETURNING {_COLUMNS})"
        f" SELECT changed.*, {append} AS audit_sequence FROM changed",
        (prompt_tokens, completion_tokens, cost_micros, reservation_id, str(expected), *event_params),
    ).fetchone()
    return None if row is None else _reservation(row)


def mark_released(conn: Conn, reservation_id: str, event: audit.Event) -> Reservation | None:
    """Compare-and-set reserved → released, and append its audit ``event``, in one statement;
    None (and no event) when the status moved."""
    append, event_params = event.call()
    row = conn.execute(
        "WITH changed AS (UPDATE oracle.gpt_usage_log SET status = 'released', released_at = oracle.clock()"  # noqa: S608 -- constant fragments, values bound
        f" WHERE reservation_id = %s AND status = 'reserved' RETURNING {_COLUMNS})"
        f" SELECT changed.*, {append} AS audit_sequence FROM changed",
        (reservation_id, *event_params),
    ).fetchone()
    return None if row is None else _reservation(row)


def expire_stale(conn: Conn) -> int:
    """Mark every user's reservations past their TTL (on the database's clock) as expired (a
    SECURITY DEFINER function)."""
    row = conn.execute("SELECT oracle.expire_stale_reservations() AS n").fetchone()
    if row is None:
        raise InvariantBroken("row is missing")
    return int(row["n"])
