"""``Recent``: values read over the network, each reused while it is young — the one rule behind
every short cache of the executor (paper prices, the loss breaker's marks, free balances).

A value's age counts from when it was asked for (a slow answer is not made younger by its delay);
a value is reused while younger than ``max_age_seconds`` (0: never); an older reading never
replaces a newer one. Safe to share between threads; callers that miss at the same moment each
ask (nothing here holds a lock over the network).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    """One cached value per key, reused while younger than ``max_age_seconds`` of ``clock``."""

    def __init__(self, max_age_seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_age = max_age_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: dict[K, tuple[float, V]] = {}

    def get(self, key: K, read: Callable[[], V]) -> V:
        """``key``'s value while it is young enough, else ``read()`` (kept as the newest)."""
        with self._lock:
            hit = self._cached.get(key)
        if hit is not None and self._clock() - hit[0] < self._max_age:
            return hit[1]
        asked_at = self._clock()
        value = read()
        self.remember(key, value, asked_at=asked_at)
        return value

    def remember(self, key: K, value: V, *, asked_at: float | None = None) -> None:
        """Keep ``value``, read at ``asked_at`` (now when not given), unless a newer one is kept."""
        at = self._clock() if asked_at is None else asked_at
        with self._lock:
            current = self._cached.get(key)
            if current is None or current[0] <= at:
                self._cached[key] = (at, value)

    def forget(self, key: K) -> None:
        """Drop ``key``'s value: the next :meth:`get` reads it again."""
        with self._lock:
            self._cached.pop(key, None)
