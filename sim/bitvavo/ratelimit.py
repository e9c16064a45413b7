"""Weight-based rate limiting per API key (or per IP without a key), as Bitvavo does it.

1000 weight points per clock minute. The ``bitvavo-ratelimit-resetat`` header is the next minute
boundary (always in the future). A request that would go over the limit is refused with 105 and
bans the caller: a key until the end of the *next* minute (the docs' example: exceeding at 12:00:15
blocks until 12:02:00), an IP for 15 minutes past the current one. A banned request costs nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sim.bitvavo.errors import SimError, ban_message

LIMIT = 1000
MINUTE_MS = 60_000
KEY_BAN_MINUTES = 1
IP_BAN_MINUTES = 15

# (METHOD, endpoint template) → (weight with a market filter, weight without one)
_WEIGHTS: dict[tuple[str, str], tuple[int, int]] = {
    ("GET", "/time"): (1, 1),
    ("GET", "/markets"): (1, 1),
    ("GET", "/assets"): (1, 1),
    ("GET", "/{market}/book"): (1, 1),
    ("GET", "/{market}/trades"): (5, 5),
    ("GET", "/{market}/candles"): (1, 1),
    ("GET", "/ticker/price"): (1, 1),
    ("GET", "/ticker/book"): (1, 1),
    ("GET", "/ticker/24h"): (1, 25),
    ("GET", "/account"): (1, 1),
    ("GET", "/account/fees"): (1, 1),
    ("GET", "/balance"): (5, 5),
    ("GET", "/order"): (1, 1),
    ("GET", "/orders"): (5, 5),
    ("GET", "/ordersOpen"): (1, 25),
    ("GET", "/trades"): (5, 5),
    ("POST", "/order"): (1, 1),
    ("PUT", "/order"): (1, 1),
    ("DELETE", "/order"): (1, 1),
    ("DELETE", "/orders"): (1, 1),
}


def weight(method: str, endpoint: str, has_market: bool) -> int:
    """The weight of one call; unknown endpoints cost 1."""
    with_market, without_market = _WEIGHTS.get((method, endpoint), (1, 1))
    return with_market if has_market else without_market


@dataclass(frozen=True)
class Budget:
    """What the three ``bitvavo-ratelimit-*`` headers say after a request."""

    limit: int
    remaining: int
    reset_at_ms: int

    def headers(self) -> dict[str, str]:
        return {
            "bitvavo-ratelimit-limit": str(self.limit),
            "bitvavo-ratelimit-remaining": str(self.remaining),
            "bitvavo-ratelimit-resetat": str(self.reset_at_ms),
        }


@dataclass
class _Window:
    start_ms: int = 0
    used: int = 0
    banned_until_ms: int = 0


def _minute_start(now_ms: int) -> int:
    return now_ms - now_ms % MINUTE_MS


class RateLimiter:
    """Counts weight per identity (``"key:<apikey>"`` or ``"ip:<address>"``); thread-safe."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def _window(self, identity: str, now_ms: int) -> _Window:
        window = self._windows.setdefault(identity, _Window(start_ms=_minute_start(now_ms)))
        start = _minute_start(now_ms)
        if window.start_ms != start:
            window.start_ms = start
            window.used = 0
        return window

    def charge(self, identity: str, cost: int, now_ms: int, *, by_key: bool) -> Budget:
        """Spend ``cost`` points or raise 105 (banning the identity when this request tips it over)."""
        with self._lock:
            window = self._window(identity, now_ms)
            if window.banned_until_ms > now_ms:
                raise SimError(105, ban_message(window.banned_until_ms))
            if window.used + cost > self.limit:
                minutes = KEY_BAN_MINUTES if by_key else IP_BAN_MINUTES
                window.banned_until_ms = window.start_ms + MINUTE_MS * (1 + minutes)
                raise SimError(105, ban_message(window.banned_until_ms))
            window.used += cost
            return Budget(self.limit, self.limit - window.used, window.start_ms + MINUTE_MS)

    def peek(self, identity: str, now_ms: int) -> Budget:
        with self._lock:
            window = self._window(identity, now_ms)
            if window.banned_until_ms > now_ms:
                return Budget(self.limit, 0, window.banned_until_ms)
            return Budget(self.limit, self.limit - window.used, window.start_ms + MINUTE_MS)

    def exhaust(self, identity: str, now_ms: int) -> None:
        """Use up the identity's budget for the current minute: its next weighted call is banned."""
        with self._lock:
            self._window(identity, now_ms).used = self.limit

    def usage(self, now_ms: int) -> dict[str, dict[str, int]]:
        with self._lock:
            result = {}
            for identity in list(self._windows):
                window = self._window(identity, now_ms)
                result[identity] = {
                    "used": window.used,
                    "remaining": self.limit - window.used,
                    "bannedUntil": window.banned_until_ms,
                }
            return result

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
