"""Advisory lock namespaces: the one list of every transaction-scoped lock the project takes.

Locks are ``pg_advisory_xact_lock(namespace, hashtext(key))``: released at commit or rollback,
so a crashed process never leaves one behind. The audit chain's namespace (2) is also used by
the SQL function oracle.append_audit_event.
"""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum

import psycopg

from shared.errors import InvariantBroken


class LockSpace(IntEnum):
    """First key of the two-key advisory lock."""

    MIGRATIONS = 0  # session lock held by the migrator
    USER_TRADING = 1  # per user: ExecuteProposal's check-and-claim, UpdatePolicy, SetTradingEnabled
    AUDIT_CHAIN = 2  # per user: appending to the audit hash chain (taken in SQL)
    USER_BUDGET = 3  # per user: ReserveCall's count-and-insert, SetLimits
    ACCOUNT_TRADING = 4  # account settings (kill switch, notional cap): exclusive to change, shared by executions


def lock_user(conn: psycopg.Connection[object], space: LockSpace, user_id: str) -> datetime:
    """Take the per-user transaction lock of ``space`` (blocks until granted); returns the
    database's clock read once the lock is granted.

    The clock (``oracle.clock()``, migration 0095) is the second expression of the statement that
    takes the lock, so it is read after the wait, in the same round trip: the time every window
    of the deciding transaction starts from (docs/design.md#one-clock-per-decision).
    """
    row = conn.execute(
        "SELECT pg_advisory_xact_lock(%s, hashtext(%s)) AS locked, oracle.clock() AS now", (int(space), user_id)
    ).fetchone()
    return _clock_of(row)


def lock_for_trading(conn: psycopg.Connection[object], user_id: str) -> datetime:
    """The account lock shared, then the user's trading lock — the lock order of every
    execution — in one statement whose last expression reads the database's clock once both are
    granted (as :func:`lock_user`; expressions of one select list run in order)."""
    row = conn.execute(
        "SELECT pg_advisory_xact_lock_shared(%s, 0) AS account, pg_advisory_xact_lock(%s, hashtext(%s)) AS locked,"
        " oracle.clock() AS now",
        (int(LockSpace.ACCOUNT_TRADING), int(LockSpace.USER_TRADING), user_id),
    ).fetchone()
    return _clock_of(row)


def _clock_of(row: object) -> datetime:
    now = row["now"] if isinstance(row, dict) else row[-1] if isinstance(row, tuple) else None
    if not isinstance(now, datetime):
        raise InvariantBroken("oracle.clock() did not return a timestamp")
    return now


def lock_account(conn: psycopg.Connection[object], *, exclusive: bool) -> None:
    """Take the account-wide lock: shared for executions, exclusive for the global kill switch and
    UpdateAccountSettings."""
    fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    conn.execute(f"SELECT {fn}(%s, 0)", (int(LockSpace.ACCOUNT_TRADING),))
