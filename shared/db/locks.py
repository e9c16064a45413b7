"""Advisory lock namespaces: the one list of every transaction-scoped lock the project takes.

Locks are ``pg_advisory_xact_lock(namespace, hashtext(key))``: released at commit or rollback,
so a crashed process never leaves one behind. The audit chain's namespace (2) is also used by
the SQL function oracle.append_audit_event.
"""

from __future__ import annotations

from enum import IntEnum

import psycopg


class LockSpace(IntEnum):
    """First key of the two-key advisory lock."""

    MIGRATIONS = 0  # session lock held by the migrator
    USER_TRADING = 1  # per user: ExecuteProposal's check-and-claim, UpdatePolicy, SetTradingEnabled
    AUDIT_CHAIN = 2  # per user: appending to the audit hash chain (taken in SQL)
    USER_BUDGET = 3  # per user: ReserveCall's count-and-insert, SetLimits
    ACCOUNT_TRADING = 4  # account settings (kill switch, notional cap): exclusive to change, shared by executions


def lock_user(conn: psycopg.Connection[object], space: LockSpace, user_id: str) -> None:
    """Take the per-user transaction lock of ``space`` (blocks until granted)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (int(space), user_id))


def lock_account(conn: psycopg.Connection[object], *, exclusive: bool) -> None:
    """Take the account-wide lock: shared for executions, exclusive for the global kill switch and
    UpdateAccountSettings."""
    fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    conn.execute(f"SELECT {fn}(%s, 0)", (int(LockSpace.ACCOUNT_TRADING),))
