"""TEST-ONLY: move the database's clock, the one clock every window is decided by.

``oracle.clock()`` (migration 0095) is ``clock_timestamp()`` moved by the one row of
``oracle.database_settings``, which only the admin (the migration owner) may write: production
never does, and no service role can. Tests write it here through the admin connection, so
window edges stay under their control while every replica reads the same, database-wide clock —
no service is given a private clock.

``DatabaseClock`` freezes the database's clock at an exact instant (``set``/``advance``), and is
also a ``shared.clock.Clock`` reporting that instant, for the in-process parts that still read
one. ``shift`` lets the clock run, moved by an offset. ``release`` puts production's clock back
(every fixture that moves the clock releases it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import psycopg


class DatabaseClock:
    """The session database's clock, frozen and moved by a test."""

    def __init__(self, admin_url: str, start: datetime | None = None) -> None:
        self._admin_url = admin_url
        self._lock = threading.Lock()
        self._now = start or datetime.now(UTC)
        if self._now.tzinfo is None:
            raise ValueError("DatabaseClock needs a timezone-aware start")
        self._write(frozen_at=self._now, offset=timedelta(0))

    def _write(self, *, frozen_at: datetime | None, offset: timedelta) -> None:
        with psycopg.connect(self._admin_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE oracle.database_settings SET clock_frozen_at = %s, clock_offset = %s WHERE id",
                (frozen_at, offset),
            )

    def now(self) -> datetime:
        """The instant the database's clock is frozen at."""
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        """Freeze the database's clock at ``when``."""
        with self._lock:
            self._write(frozen_at=when, offset=timedelta(0))
            self._now = when

    def advance(self, delta: timedelta) -> datetime:
        """Move the frozen clock by ``delta``; returns the new instant."""
        with self._lock:
            when = self._now + delta
            self._write(frozen_at=when, offset=timedelta(0))
            self._now = when
            return when

    def release(self) -> None:
        """Production's clock again: running, no offset."""
        with self._lock:
            self._write(frozen_at=None, offset=timedelta(0))


# The ``db_clock`` fixture (tests/conftest.py): freeze the database's clock at a start (None: now).
DbClock = Callable[[datetime | None], DatabaseClock]


@contextmanager
def database_clock(admin_url: str, start: datetime | None = None) -> Iterator[DatabaseClock]:
    """The database's clock frozen at ``start`` (default: now) for the block, released after."""
    clock = DatabaseClock(admin_url, start)
    try:
        yield clock
    finally:
        clock.release()


def shift_database_clock(admin_url: str, offset: timedelta) -> None:
    """Let the database's clock run ``offset`` away from the server's wall clock."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE oracle.database_settings SET clock_frozen_at = NULL, clock_offset = %s WHERE id", (offset,)
        )
