"""Budget windows and limits: the pure rules of docs/design.md#budget-zero-overshoot (no database, no gRPC).

Four windows per user: calls per UTC day, calls per rolling 60 minutes, tokens per UTC day and
cost (micros of USD) per UTC day. A window's usage is read from the usage log under the user's
lock (see ledger.py); this module decides, from that usage and the limits, whether one more
call fits, how many completion tokens it may use, and when an exhausted window frees up.

Call limits of 0 allow no call; token and cost limits of 0 mean "no such limit".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from services.budget.pricing import ModelPrice
from shared.clock import start_of_utc_day

HOUR = timedelta(minutes=60)
DAY = timedelta(days=1)


class Window(StrEnum):
    """One budget window. The value names it in quota subjects (``user:<id>/<value>``) and is
    the name of its field in Limits and Usage."""

    DAILY_CALLS = "daily_calls"
    HOURLY_CALLS = "hourly_calls"
    DAILY_TOKENS = "daily_tokens"
    DAILY_COST = "daily_cost_micros"


class _PerWindow:
    """A figure per window, in fields named like the windows' values."""

    def of(self, window: Window) -> int:
        """The figure of ``window``."""
        return int(getattr(self, window.value))


@dataclass(frozen=True)
class Limits(_PerWindow):
    """A user's limits."""

    daily_calls: int
    hourly_calls: int
    daily_tokens: int = 0
    daily_cost_micros: int = 0

    def problems(self) -> list[tuple[str, str]]:
        """(field, what is wrong) for every rule the limits break; empty when valid."""
        out = [(window.value, "must not be negative") for window in Window if self.of(window) < 0]
        if not out and self.hourly_calls > self.daily_calls:
            out.append(("hourly_calls", "must not exceed daily_calls"))
        return out


@dataclass(frozen=True)
class Bounds:
    """Where the windows start and end at ``now``."""

    now: datetime
    day_start: datetime
    day_end: datetime
    hour_start: datetime

    @classmethod
    def at(cls, now: datetime) -> Bounds:
        """The windows at ``now`` (UTC day; rolling hour, whose start itself is outside)."""
        day_start = start_of_utc_day(now)
        return cls(now=now, day_start=day_start, day_end=day_start + DAY, hour_start=now - HOUR)


@dataclass(frozen=True)
class Usage(_PerWindow):
    """What a user's counted rows (every status but released) add up to in each window."""

    daily_calls: int
    hourly_calls: int
    daily_tokens: int
    daily_cost_micros: int


@dataclass(frozen=True)
class Grant:
    """What a granted reservation holds."""

    max_tokens: int
    estimated_tokens: int
    estimated_cost_micros: int


@dataclass(frozen=True)
class Shortfall:
    """A window that has no room for the call."""

    window: Window
    used: int
    limit: int


@dataclass(frozen=True)
class Decision:
    """Either a grant or the windows that refuse the call (never both)."""

    grant: Grant | None
    shortfalls: tuple[Shortfall, ...]


def decide(
    limits: Limits,
    usage: Usage,
    *,
    prompt_tokens: int,
    requested_max_tokens: int,
    cap: int,
    price: ModelPrice,
) -> Decision:
    """Whether one more call fits, and its max_tokens: min(requested, cap, what the token and cost
    limits leave after the prompt estimate). Every window without room is reported."""
    shortfalls: list[Shortfall] = []
    for window in (Window.DAILY_CALLS, Window.HOURLY_CALLS):
        if usage.of(window) >= limits.of(window):
            shortfalls.append(Shortfall(window, usage.of(window), limits.of(window)))
    max_tokens = min(requested_max_tokens, cap)
    if limits.daily_tokens > 0:
        room = limits.daily_tokens - usage.daily_tokens - prompt_tokens
        if room < 1:
            shortfalls.append(Shortfall(Window.DAILY_TOKENS, usage.daily_tokens, limits.daily_tokens))
        max_tokens = min(max_tokens, room)
    if limits.daily_cost_micros > 0:
        room_by_cost = price.completion_tokens_within(prompt_tokens, limits.daily_cost_micros - usage.daily_cost_micros)
        if room_by_cost is not None:
            if room_by_cost < 1:
                shortfalls.append(Shortfall(Window.DAILY_COST, usage.daily_cost_micros, limits.daily_cost_micros))
            max_tokens = min(max_tokens, room_by_cost)
    if shortfalls:
        return Decision(None, tuple(shortfalls))
    grant = Grant(
        max_tokens=max_tokens,
        estimated_tokens=prompt_tokens + max_tokens,
        estimated_cost_micros=price.cost_micros(prompt_tokens, max_tokens),
    )
    return Decision(grant, ())


def hourly_rows_to_leave(shortfall: Shortfall) -> int:
    """How many of the oldest rows in the rolling hour must leave it before one more call fits."""
    return shortfall.used - shortfall.limit + 1


def frees_at(
    shortfall: Shortfall,
    bounds: Bounds,
    *,
    prompt_tokens: int,
    price: ModelPrice,
    leaving_reserved_at: datetime | None = None,
) -> datetime | None:
    """When ``shortfall``'s window has room again by the passing of time alone; None when time
    alone never makes room (a limit of 0, or a call too large for a whole empty day).

    For the hourly window ``leaving_reserved_at`` is the reservation time of the row whose
    leaving makes room (see :func:`hourly_rows_to_leave`)."""
    if shortfall.limit <= 0:
        return None
    if shortfall.window is Window.HOURLY_CALLS:
        return None if leaving_reserved_at is None else leaving_reserved_at + HOUR
    if shortfall.window is Window.DAILY_TOKENS and shortfall.limit - prompt_tokens < 1:
        return None
    if shortfall.window is Window.DAILY_COST:
        room = price.completion_tokens_within(prompt_tokens, shortfall.limit)
        if room is not None and room < 1:
            return None
    return bounds.day_end


def retry_after(free_times: list[datetime | None], now: datetime) -> timedelta | None:
    """How long until every refusing window has room (None when one never will by time)."""
    if not free_times or any(t is None for t in free_times):
        return None
    latest = max(t for t in free_times if t is not None)
    return max(latest - now, timedelta(0))


@dataclass(frozen=True)
class WindowReport:
    """The state of one window for GetUsage."""

    window: Window
    used: int
    limit: int
    remaining: int
    resets_at: datetime | None
    unlimited: bool


def report(
    limits: Limits, usage: Usage, bounds: Bounds, *, oldest_in_hour: datetime | None
) -> tuple[WindowReport, ...]:
    """Used / limit / remaining / reset time of every window."""
    out = []
    for window in Window:
        limit = limits.of(window)
        used = usage.of(window)
        unlimited = window in (Window.DAILY_TOKENS, Window.DAILY_COST) and limit == 0
        if window is Window.HOURLY_CALLS:
            resets_at = None if oldest_in_hour is None else oldest_in_hour + HOUR
        else:
            resets_at = bounds.day_end
        out.append(
            WindowReport(
                window=window,
                used=used,
                limit=limit,
                remaining=0 if unlimited else max(limit - used, 0),
                resets_at=resets_at,
                unlimited=unlimited,
            )
        )
    return tuple(out)
