"""What each Bitvavo request costs against the 1000-per-minute weight budget (the fact sheet's
table), and ``WeightMeter``: the weight this client spent, in total and per calling thread, so a
caller such as the reconciler can bound its weight per minute.

History endpoints (``GET /orders``, ``GET /trades``, ``/balance``) cost 5; ``GET /ordersOpen`` and
``GET /ticker/24h`` cost 25 without a market; everything else 1 (DELETE included: the docs say
"N/A", ccxt says 1).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

HISTORY_WEIGHT = 5
_FIVE = frozenset({"/orders", "/trades", "/balance", "/depositHistory", "/withdrawalHistory"})
_TWENTY_FIVE_WITHOUT_MARKET = frozenset({"/ordersOpen", "/ticker/24h"})


def request_weight(method: str, endpoint: str, query: str = "") -> int:
    """The weight of ``method endpoint?query`` (``endpoint`` after ``/v2``, e.g. ``/orders``;
    a public ``/{market}/trades`` costs 5 too)."""
    path = endpoint.split("?", 1)[0]
    has_market = "market=" in query or "market=" in endpoint
    if method.upper() == "GET":
        if path in _FIVE or (path.endswith("/trades") and path.count("/") == 2):
            return HISTORY_WEIGHT
        if path in _TWENTY_FIVE_WITHOUT_MARKET and not has_market:
            return 25
    return 1


@dataclass
class WeightTally:
    """Weight spent by one thread inside ``WeightMeter.tally()``."""

    spent: int = 0


class WeightMeter:
    """Counts the weight of every request sent; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0
        self._local = threading.local()

    @property
    def total(self) -> int:
        with self._lock:
            return self._total

    def add(self, weight: int) -> None:
        with self._lock:
            self._total += weight
        for tally in getattr(self._local, "tallies", ()):
            tally.spent += weight

    @contextmanager
    def tally(self) -> Iterator[WeightTally]:
        """Count what this thread sends inside the block (other threads' requests are not counted)."""
        tallies: list[WeightTally] = self._local.__dict__.setdefault("tallies", [])
        tally = WeightTally()
        tallies.append(tally)
        try:
            yield tally
        finally:
            tallies.remove(tally)
