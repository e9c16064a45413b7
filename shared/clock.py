"""A service's own time, injectable, for what only that process relies on (request deadlines,
caches, the executor's send deadline). Windows, caps, leases, TTLs and proposal expiry are NOT
decided by it: they are the database's clock (shared.db.clock, docs/design.md#one-clock-per-decision).
Always UTC and timezone-aware."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Something that tells the current UTC time."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that tests set and advance; thread-safe."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime.now(UTC)
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when``."""
        with self._lock:
            self._now = when

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by ``delta``; returns the new time."""
        with self._lock:
            self._now = self._now + delta
            return self._now


def start_of_utc_day(when: datetime) -> datetime:
    """00:00 UTC of ``when``'s day: where every daily window starts."""
    utc = when.astimezone(UTC)
    return utc.replace(hour=0, minute=0, second=0, microsecond=0)
