"""Free balances read from the exchange, reused for a few seconds (docs/design.md#speed-that-lasts).

``GET /balance`` costs the trade key 5 of its 1000 weight points a minute; reading it for every
execution would make the balance the key's biggest spender. A balance read here is reused for at
most ``max_age_seconds`` and stays conservative meanwhile, across every replica, because it is
kept with its *database* time ``as_of`` — the database's clock read before the request left — and
the balance check subtracts every execution of the account still in flight or settled since
``as_of`` (oracle.account_in_flight_eur): our own fills since the read are counted against it,
whichever replica made them (a fill between ``as_of`` and the exchange's answer is counted twice,
never missed). What the cache cannot see — money leaving the account outside this system — ends
at the exchange's refusal for balance (216): the execution is FAILED (nothing was created) and
:meth:`forget` drops the cached figure, so the next execution reads the balance again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.executor.recent import Recent

# Bitvavo's errorCode for an order the account's balance cannot pay for (nothing is created).
INSUFFICIENT_BALANCE = 216


@dataclass(frozen=True)
class Balance:
    """A free balance and the database's clock just before it was read from the exchange."""

    free: Decimal
    as_of: datetime


class Balances:
    """The free balance of each asset, read through ``read(symbol, market)`` and reused for at most
    ``max_age_seconds`` (0: read every time; recent.Recent)."""

    def __init__(
        self,
        read: Callable[[str, str], Decimal],
        *,
        max_age_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._recent: Recent[str, Balance] = Recent(max_age_seconds, clock=monotonic)

    def get(self, symbol: str, market: str, *, db_now: datetime) -> Balance:
        """The free balance of ``symbol``: the cached one while it is young enough, else read now
        (network, no lock held), stamped ``db_now`` — the database's clock read before this call."""
        return self._recent.get(symbol, lambda: Balance(self._read(symbol, market), db_now))

    def forget(self, symbol: str) -> None:
        """Drop ``symbol``'s cached balance (the exchange refused an order for balance)."""
        self._recent.forget(symbol)
