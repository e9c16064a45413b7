"""The database's clock: ``oracle.clock()`` (migration 0095), the one clock every decision that
another replica relies on is taken from (docs/design.md#one-clock-per-decision).

Deciding statements read it themselves, after their locks are held (shared.db.locks.lock_user
returns it from the statement that takes the lock); this is for the few places that only report
a time and have no statement of their own to fold it into.
"""

from __future__ import annotations

from datetime import datetime

import psycopg

from shared.errors import InvariantBroken


def database_now(conn: psycopg.Connection[object]) -> datetime:
    """``oracle.clock()`` now."""
    row = conn.execute("SELECT oracle.clock() AS now").fetchone()
    now = row["now"] if isinstance(row, dict) else row[0] if isinstance(row, tuple) else None
    if not isinstance(now, datetime):
        raise InvariantBroken("oracle.clock() did not return a timestamp")
    return now
