"""``OrderLookup``: find one order by (market, clientOrderId) within the exchange's limits, whatever
else the shared account's history holds.

Why each step (docs/design.md, "history within the exchange's limits"):

1. ``GET /order?market=&clientOrderId=`` (weight 1). Whether it finds an order that is no longer
   active is unconfirmed at Bitvavo, so a 240 there proves nothing: go on to the history.
2. ``GET /orders`` and ``GET /trades`` (weight 5 each) from the order's send time to now, in
   windows of at most ``HISTORY_WINDOW_MS`` (24 h per request is the rule to assume), each window
   paged newest first with ``limit`` = 1000 and ``end`` (inclusive, rows seen twice are dropped).
3. Rows are matched on ``clientOrderId`` *before* any parsing: a row that is not ours is skipped
   whatever its shape — another user of the account may hold order types and statuses this code
   has never heard of. A row that is ours and does not parse is reported as ``Unparseable`` with
   the raw row and the reason, never raised.

Results (one of three, each with the ``weight`` the lookup spent, retries and clock measurements
included):

* ``OrderFound`` — the order (from ``GET /order`` or ``/orders``; ``None`` when only its fills were
  found) and its fills from ``/trades`` (empty when ``GET /order`` answered: the order carries them);
* ``OrderAbsent`` — every request answered cleanly and nothing with this clientOrderId exists in
  the span searched (``searched_from_ms``..``searched_until_ms``, exchange time);
* ``Unparseable`` — a row that is ours and cannot be parsed.

A request that fails raises the typed errors of ``shared.exchange.errors`` (the lookup proved
nothing); with ``max_weight``, ``WeightBudgetExceededError`` before a request that would pass it.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from shared.exchange.errors import (
    OrderNotFoundError,
    UnexpectedResponseError,
    WeightBudgetExceededError,
)
from shared.exchange.orders import Order, Trade
from shared.exchange.sdk import BitvavoGateway, ProjectBitvavo
from shared.exchange.weights import HISTORY_WEIGHT, WeightTally
from shared.exchange.wire import as_list, check_market, check_uuid

HISTORY_WINDOW_MS = 86_400_000
"""Longest ``start``..``end`` span of one history request."""
HISTORY_PAGE = 1000
"""Rows per history page (the endpoints' maximum)."""
UNTIL_MARGIN_MS = 5_000
"""Searched past the exchange clock's "now": the measured offset is only right to within half a
round trip, and a row stamped a moment ago must fall inside the span."""
ORDER_WEIGHT = 1
_PARSE_ERRORS = (UnexpectedResponseError, KeyError, TypeError, ValueError, ArithmeticError)


@dataclass(frozen=True)
class OrderFound:
    """The order exists (or existed) at the exchange."""

    order: Order | None
    """The order object; ``None`` when only fills carrying the clientOrderId were found."""
    trades: tuple[Trade, ...]
    """Its fills as ``GET /trades`` lists them (empty when ``GET /order`` answered)."""
    via: str
    """``"order"`` (``GET /order`` by clientOrderId) or ``"history"`` (``/orders``, ``/trades``)."""
    weight: int


@dataclass(frozen=True)
class OrderAbsent:
    """Every lookup answered cleanly: nothing with the clientOrderId in the span (exchange ms)."""

    searched_from_ms: int
    searched_until_ms: int
    weight: int


@dataclass(frozen=True)
class Unparseable:
    """A row that is ours (its clientOrderId matches) but does not parse."""

    raw: Any
    """The row exactly as the exchange sent it (JSON-ready), for the audit trail."""
    reason: str
    source: str
    """``"GET /order"``, ``"GET /orders"`` or ``"GET /trades"``."""
    weight: int


LookupResult = OrderFound | OrderAbsent | Unparseable


class _Budget:
    """Refuses a request that would take the lookup's weight past ``limit``."""

    def __init__(self, tally: WeightTally, limit: int | None) -> None:
        self.tally = tally
        self.limit = limit

    def allow(self, cost: int) -> None:
        if self.limit is not None and self.tally.spent + cost > self.limit:
            raise WeightBudgetExceededError(f"lookup weight {self.tally.spent} + {cost} would pass {self.limit}")


def history_windows(since_ms: int, until_ms: int, window_ms: int = HISTORY_WINDOW_MS) -> Iterator[tuple[int, int]]:
    """Inclusive ``(start, end)`` windows tiling ``since_ms``..``until_ms``, newest first, each
    spanning at most ``window_ms`` (end − start < window_ms)."""
    if window_ms < 1:
        raise ValueError("window_ms must be positive")
    end = until_ms
    while end >= since_ms:
        start = max(since_ms, end - window_ms + 1)
        yield start, end
        end = start - 1


def _stamp(row: Any, name: str) -> int | None:
    value = row.get(name) if isinstance(row, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _identity(row: Any, name: str) -> str:
    value = row.get(name) if isinstance(row, Mapping) else None
    if isinstance(value, str):
        return value
    return json.dumps(row, sort_keys=True, default=str)


class OrderLookup:
    """Looks orders up by clientOrderId through ``gateway`` (its key must be able to view)."""

    def __init__(self, gateway: BitvavoGateway, *, window_ms: int = HISTORY_WINDOW_MS) -> None:
        if not 1 <= window_ms <= HISTORY_WINDOW_MS:
            raise ValueError(f"window_ms must be between 1 and {HISTORY_WINDOW_MS}")
        self._gateway = gateway
        self._window_ms = window_ms

    def find(
        self,
        market: str,
        client_order_id: uuid.UUID | str,
        *,
        since_ms: int,
        until_ms: int | None = None,
        max_weight: int | None = None,
    ) -> LookupResult:
        """Look ``client_order_id`` up in ``market`` from ``since_ms`` (exchange time: when the order
        could first have been sent) to ``until_ms`` (default: the exchange clock now, plus
        ``UNTIL_MARGIN_MS``). See the module docstring for the steps and results."""
        check_market(market)
        cid = check_uuid(client_order_id, "client_order_id")
        until = self._gateway.clock.now_ms() + UNTIL_MARGIN_MS if until_ms is None else until_ms
        if until < since_ms:
            raise ValueError("until_ms is before since_ms")
        with self._gateway.meter.tally() as tally:
            budget = _Budget(tally, max_weight)
            result = self._find(market, cid, since_ms, until, budget)
            spent = tally.spent
        return _with_weight(result, spent)

    def _find(self, market: str, cid: str, since_ms: int, until_ms: int, budget: _Budget) -> LookupResult:
        by_id = self._open_order(market, cid, budget)
        if by_id is not None:
            return by_id
        return self._in_history(market, cid, (since_ms, until_ms), budget)

    def _open_order(self, market: str, cid: str, budget: _Budget) -> LookupResult | None:
        """Step 1, GET /order by clientOrderId; None (go on to the history) on a 240 or no answer."""
        budget.allow(ORDER_WEIGHT)
        query = f"?market={market}&clientOrderId={cid}"
        try:
            raw = self._gateway.read("get order", lambda sdk: sdk.privateRequest("/order", query, {}, "GET"))
        except OrderNotFoundError:
            raw = None
        if raw is None:
            return None
        if not isinstance(raw, Mapping) or raw.get("clientOrderId") != cid:
            return Unparseable(raw, "GET /order answered a row for another clientOrderId", "GET /order", 0)
        try:
            return OrderFound(Order.from_json(raw), (), "order", 0)
        except _PARSE_ERRORS as exc:
            return Unparseable(raw, f"{type(exc).__name__}: {exc}", "GET /order", 0)

    def _in_history(self, market: str, cid: str, span: tuple[int, int], budget: _Budget) -> LookupResult:
        """Step 2, the order and trade history in ``span``: found, absent, or a row we cannot read."""
        orders = self._ours(
            "orders", _get_orders(market), cid, stamp="created", ident="orderId", span=span, budget=budget
        )
        trades = self._ours("trades", _get_trades(market), cid, stamp="timestamp", ident="id", span=span, budget=budget)
        order: Order | None = None
        for raw_order in orders:
            try:
                order = Order.from_json(raw_order)
            except _PARSE_ERRORS as exc:
                return Unparseable(raw_order, f"{type(exc).__name__}: {exc}", "GET /orders", 0)
        parsed: list[Trade] = []
        for raw_trade in trades:
            try:
                parsed.append(Trade.from_json(raw_trade))
            except _PARSE_ERRORS as exc:
                return Unparseable(raw_trade, f"{type(exc).__name__}: {exc}", "GET /trades", 0)
        if order is None and not parsed:
            return OrderAbsent(span[0], span[1], 0)
        return OrderFound(order, tuple(parsed), "history", 0)

    def _ours(
        self,
        operation: str,
        fetch: _Fetch,
        cid: str,
        *,
        stamp: str,
        ident: str,
        span: tuple[int, int],
        budget: _Budget,
    ) -> list[Any]:
        """The raw rows carrying ``cid`` in the ``span``, window by window, page by page. Nothing
        but a row's ``clientOrderId``, timestamp (``stamp``) and id (``ident``) is read here."""
        ours: dict[str, Any] = {}
        for start, end in history_windows(span[0], span[1], self._window_ms):
            seen: set[str] = set()
            page_end = end
            while True:
                budget.allow(HISTORY_WEIGHT)
                options = {"limit": HISTORY_PAGE, "start": start, "end": page_end}
                page = as_list(self._gateway.read(operation, functools.partial(_call, fetch, options)), operation)
                fresh = 0
                for row in page:
                    key = _identity(row, ident)
                    if key in seen:
                        continue
                    seen.add(key)
                    fresh += 1
                    if isinstance(row, Mapping) and row.get("clientOrderId") == cid:
                        ours[key] = row
                if len(page) < HISTORY_PAGE:
                    break
                stamps = [s for s in (_stamp(row, stamp) for row in page) if s is not None]
                if fresh == 0 or not stamps:
                    raise UnexpectedResponseError(f"{operation}: cannot page past {page_end} in {start}..{end}")
                page_end = min(stamps)
        return list(ours.values())


_Fetch = Callable[[ProjectBitvavo, dict[str, int]], Any]


def _call(fetch: _Fetch, options: dict[str, int], sdk: ProjectBitvavo) -> Any:
    return fetch(sdk, dict(options))


def _get_orders(market: str) -> _Fetch:
    return lambda sdk, options: sdk.getOrders(market, options)


def _get_trades(market: str) -> _Fetch:
    return lambda sdk, options: sdk.trades(market, options)


def _with_weight(result: LookupResult, weight: int) -> LookupResult:
    return replace(result, weight=weight)
