"""The simulated exchange: markets, balances, orders and matching, behind one lock.

It knows nothing about HTTP. The server authenticates, rate-limits and routes; then it calls one
method here with the caller's ``ApiKey`` and the request's query or body, and gets JSON-ready data
back or a ``SimError``. Everything runs under ``self.lock``; ``sync()`` first plays every price
step the clock has passed, filling resting orders and firing triggers at each step's book.

Matching model: orders take the synthetic book of the current step (taker fee), resting limit
orders fill at their own price when a later step's book crosses them (maker fee), and every order
holds what it may spend when placed (216 when that is not available), releasing the rest when it
ends. Fees are charged in the quote currency; a quote-sized buy takes its fee out of
``amountQuote``, so filledAmountQuote + feePaid == amountQuote when it fills.
Self-trade prevention only looks at the account's own resting orders; ``decrementAndCancel`` is
treated as ``cancelNewest``.

The switchable constraints (``sim.bitvavo.switches``) are applied here: the history range limit
(``_history_window``), closed orders by clientOrderId (``_find``) and deferred fee settlement
(``_fill``, ``_looked_up``). Rows "from other users" of the shared account (``admin_add_foreign``)
are raw JSON of unknown order types and statuses, listed in that account's history beside its
own orders.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sim.bitvavo.accounts import Wallet
from sim.bitvavo.clock import SimClock
from sim.bitvavo.errors import SimError, invalid, required
from sim.bitvavo.markets import EXTRA_ASSETS, ORDER_TYPES, MarketSpec, wire
from sim.bitvavo.orders import TRIGGER_TYPES, Fill, SimOrder
from sim.bitvavo.prices import (
    BOOK_LEVELS,
    CALENDAR_INTERVALS,
    INTERVALS_MS,
    Level,
    PriceWalk,
    hashed_uuid,
    quantize_down,
    significant_digits,
)
from sim.bitvavo.signing import ApiKey
from sim.bitvavo.switches import Switches

TAKER_FEE = Decimal("0.0025")
MAKER_FEE = Decimal("0.0015")
MAX_OPEN_ORDERS = 100
DAY_MS = 86_400_000

_ORDER_BODY_PARAMS = frozenset(
    {
        "market",
        "side",
        "orderType",
        "operatorId",
        "clientOrderId",
        "amount",
        "amountQuote",
        "price",
        "triggerAmount",
        "triggerType",
        "triggerReference",
        "timeInForce",
        "postOnly",
        "selfTradePrevention",
        "disableMarketProtection",
        "responseRequired",
    }
)
_STP_MODES = frozenset({"decrementAndCancel", "cancelOldest", "cancelNewest", "cancelBoth"})
_TRIGGER_REFERENCES = frozenset({"lastTrade", "bestBid", "bestAsk", "midPrice"})


def is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def _decimal(params: Mapping[str, Any], name: str) -> Decimal | None:
    """A positive decimal string parameter, ``None`` when absent; 205 when malformed."""
    if name not in params:
        return None
    raw = params[name]
    if not isinstance(raw, str):
        raise invalid(name)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise invalid(name) from None
    if not value.is_finite() or value <= 0:
        raise invalid(name)
    return value


def _decimals_of(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _int_param(query: Mapping[str, str], name: str, low: int, high: int, default: int | None) -> int | None:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(name) from None
    if not low <= value <= high:
        raise invalid(name)
    return value


def _walk(
    levels: list[Level],
    *,
    side: str,
    limit_price: Decimal | None,
    base_target: Decimal | None,
    quote_target: Decimal | None,
    spend_cap: Decimal | None,
    decimals: int,
    fee_rate: Decimal,
) -> tuple[list[tuple[Decimal, Decimal]], bool]:
    """Take liquidity from ``levels`` (best first). Returns the (price, amount) fills and whether the
    target was reached (False when the book, the limit price or the spend cap stopped it)."""
    fills: list[tuple[Decimal, Decimal]] = []
    base_left = base_target
    quote_left = None
    if quote_target is not None:
        quote_left = quote_target / (1 + fee_rate) if side == "buy" else quote_target
    cap_left = spend_cap
    for level in levels:
        if limit_price is not None and (
            (side == "buy" and level.price > limit_price) or (side == "sell" and level.price < limit_price)
        ):
            return fills, False
        take = level.size
        if base_left is not None:
            take = min(take, base_left)
        if quote_left is not None:
            take = min(take, quantize_down(quote_left / level.price, decimals))
        target_hit = take <= 0
        if cap_left is not None:
            take = min(take, quantize_down(cap_left / (level.price * (1 + fee_rate)), decimals))
        if take <= 0:
            return fills, target_hit
        fills.append((level.price, take))
        notional = level.price * take
        if base_left is not None:
            base_left -= take
            if base_left <= 0:
                return fills, True
        if quote_left is not None:
            quote_left -= notional
        if cap_left is not None:
            cap_left -= notional * (1 + fee_rate)
    return fills, False


@dataclass(frozen=True)
class _Sizes:
    """The size and price fields of an order request, as given (None: absent)."""

    amount: Decimal | None
    amount_quote: Decimal | None
    price: Decimal | None
    trigger: Decimal | None


def _limit_like(order_type: str) -> bool:
    return order_type in ("limit", "stopLossLimit", "takeProfitLimit")


def _order_sizes(body: Mapping[str, Any], order_type: str) -> _Sizes:
    """The fields an order of ``order_type`` needs, and none that it may not carry."""
    sizes = _Sizes(
        amount=_decimal(body, "amount"),
        amount_quote=_decimal(body, "amountQuote"),
        price=_decimal(body, "price"),
        trigger=_decimal(body, "triggerAmount"),
    )
    if _limit_like(order_type):
        if sizes.amount_quote is not None:
            raise SimError(202, "amountQuote order parameter is not supported.")
        if sizes.amount is None:
            raise required("amount")
        if sizes.price is None:
            raise required("price")
    else:
        if sizes.price is not None:
            raise SimError(202, "price order parameter is not supported.")
        if sizes.amount is not None and sizes.amount_quote is not None:
            raise SimError(206, "Use either amount or amountQuote. Not both.")
        if sizes.amount is None and sizes.amount_quote is None:
            raise required("amount")
    _check_trigger(body, order_type, sizes.trigger)
    return sizes


def _check_trigger(body: Mapping[str, Any], order_type: str, trigger: Decimal | None) -> None:
    """A trigger (amount, type, reference) on exactly the order types that have one."""
    if order_type in TRIGGER_TYPES:
        if trigger is None:
            raise required("triggerAmount")
        if body.get("triggerType", "price") != "price":
            raise invalid("triggerType")
        if body.get("triggerReference", "lastTrade") not in _TRIGGER_REFERENCES:
            raise invalid("triggerReference")
    elif trigger is not None:
        raise SimError(202, "triggerAmount order parameter is not supported.")


def _order_options(body: Mapping[str, Any], order_type: str) -> tuple[str, bool, str]:
    """(timeInForce, postOnly, selfTradePrevention), each valid for ``order_type``."""
    limit_like = _limit_like(order_type)
    time_in_force = body.get("timeInForce", "GTC")
    if time_in_force not in ("GTC", "IOC", "FOK") or (not limit_like and time_in_force != "GTC"):
        raise invalid("timeInForce")
    post_only = body.get("postOnly", False)
    if not isinstance(post_only, bool) or (post_only and not limit_like):
        raise invalid("postOnly")
    stp = body.get("selfTradePrevention", "decrementAndCancel")
    if stp not in _STP_MODES:
        raise invalid("selfTradePrevention")
    if body.get("disableMarketProtection", False) is not False:
        raise invalid("disableMarketProtection")
    if not isinstance(body.get("responseRequired", True), bool):
        raise invalid("responseRequired")
    return time_in_force, post_only, stp


def _check_precision(spec: MarketSpec, sizes: _Sizes) -> None:
    """Decimal places, significant digits, tick size and the base amount limits of ``spec``."""
    for name, value, limit in (
        ("amount", sizes.amount, spec.quantity_decimals),
        ("amountQuote", sizes.amount_quote, spec.notional_decimals),
    ):
        if value is not None and _decimals_of(value) > limit:
            raise SimError(429, f"{name} has too many decimal places. The maximum is {limit}.")
    for name, value in (("price", sizes.price), ("triggerAmount", sizes.trigger)):
        if value is not None:
            if _decimals_of(value) > 15:
                raise SimError(215, f"{name} has more than 15 decimal places.")
            if spec.tick_size is None and significant_digits(value) > spec.price_precision:
                raise SimError(214, f"{name} has too many significant digits.")
            if spec.tick_size is not None and value % spec.tick_size != 0:
                raise SimError(422, f"{name} is not a multiple of tickSize {wire(spec.tick_size)}.")
    if sizes.amount is not None:
        if sizes.amount > spec.max_order_base:
            raise SimError(210, f"Amount exceeds the maximum allowed amount ({wire(spec.max_order_base)}).")
        if sizes.amount < spec.min_order_base:
            raise SimError(212)


class Exchange:
    """All exchange state. Public methods take the lock; names mirror the REST endpoints."""

    def __init__(
        self,
        *,
        seed: int,
        markets: Iterable[MarketSpec],
        keys: Iterable[ApiKey],
        accounts: Mapping[str, Mapping[str, Decimal]],
        clock: SimClock,
        step_ms: int = 60_000,
        history_steps: int = 7 * 24 * 60,
        taker_fee: Decimal = TAKER_FEE,
        maker_fee: Decimal = MAKER_FEE,
        switches: Switches | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self._initial_switches = switches or Switches()
        self.clock = clock
        self.seed = seed
        self.step_ms = step_ms
        self.history_steps = history_steps
        self.taker_fee = taker_fee
        self.maker_fee = maker_fee
        self._initial_markets = tuple(markets)
        if not self._initial_markets:
            raise ValueError("the simulator needs at least one market")
        self._initial_keys = tuple(keys)
        self._initial_accounts = {name: dict(b) for name, b in accounts.items()}
        self.reset()

    def reset(self) -> None:
        """Back to the configured markets, keys and balances; the price walk restarts at now."""
        with self.lock:
            start_step = self.clock.now_ms() // self.step_ms
            self.specs: dict[str, MarketSpec] = {m.market: m for m in self._initial_markets}
            self.walks: dict[str, PriceWalk] = {
                m.market: PriceWalk(m, self.seed, start_step, self.step_ms, self.history_steps)
                for m in self._initial_markets
            }
            self.keys: dict[str, ApiKey] = {k.key: k for k in self._initial_keys}
            self.wallets: dict[str, Wallet] = {name: Wallet(dict(b)) for name, b in self._initial_accounts.items()}
            for key in self._initial_keys:
                self.wallets.setdefault(key.account, Wallet())
            self.orders: list[SimOrder] = []
            # indexes: active orders in placement order; orders per (account, market, clientOrderId)
            self._open: dict[tuple[str, str], SimOrder] = {}
            self._by_cid: dict[tuple[str, str, str], list[SimOrder]] = {}
            self._by_id: dict[tuple[str, str], SimOrder] = {}
            self.switches = self._initial_switches
            # raw history rows of other users of an account: (account, market, created, order, trades)
            self._foreign: list[tuple[str, str, int, dict[str, Any], list[dict[str, Any]]]] = []
            self._counter = 0
            self._processed_step = 0
            self._nonce = 0

    # -- time and matching -----------------------------------------------------------------------
    def now_step(self) -> int:
        return self.clock.now_ms() // self.step_ms - next(iter(self.walks.values())).start_step

    def sync(self) -> None:
        """Play every step the clock has passed: resting orders and triggers meet each step's book."""
        with self.lock:
            target = self.now_step()
            while self._processed_step < target:
                self._processed_step += 1
                self._nonce += 1
                self._match_resting(self._processed_step)

    def _match_resting(self, k: int, only_market: str | None = None) -> None:
        markets = sorted({o.market for o in self._open.values() if only_market in (None, o.market)})
        for market in markets:
            if self.specs[market].status != "trading":
                continue
            walk = self.walks[market]
            bids, asks = walk.book(k)
            ts = max(walk.step_start_ms(k), 0)
            for order in [o for o in self._open.values() if o.market == market]:
                if not order.active:
                    continue  # finished by an earlier order's self-trade prevention in this loop
                order_ts = max(ts, order.created)
                if order.status == "awaitingTrigger":
                    if self._triggered(order, walk.shown_price(k), bids, asks):
                        self._fire_trigger(order, bids, asks, order_ts)
                    continue
                if order.price is None:
                    continue
                crossing = [lv for lv in (asks if order.side == "buy" else bids) if self._crosses(order, lv.price)]
                available = sum((lv.size for lv in crossing), Decimal(0))
                amount = min(order.amount_remaining, available)
                if amount > 0:
                    self._fill(order, order.price, amount, taker=False, ts=order_ts)
                    if order.amount_remaining <= 0:
                        self._finish(order, "filled", order_ts)
                    else:
                        order.status = "partiallyFilled"

    @staticmethod
    def _crosses(order: SimOrder, level_price: Decimal) -> bool:
        assert order.price is not None
        return level_price <= order.price if order.side == "buy" else level_price >= order.price

    @staticmethod
    def _triggered(order: SimOrder, last: Decimal, bids: list[Level], asks: list[Level]) -> bool:
        assert order.trigger_amount is not None
        reference = {
            "lastTrade": last,
            "bestBid": bids[0].price,
            "bestAsk": asks[0].price,
            "midPrice": (bids[0].price + asks[0].price) / 2,
        }[order.trigger_reference or "lastTrade"]
        falling = (order.order_type.startswith("stopLoss") and order.side == "sell") or (
            order.order_type.startswith("takeProfit") and order.side == "buy"
        )
        return reference <= order.trigger_amount if falling else reference >= order.trigger_amount

    def _fire_trigger(self, order: SimOrder, bids: list[Level], asks: list[Level], ts: int) -> None:
        order.status = "new"
        order.updated = ts
        self._execute(order, bids, asks, ts, resting_allowed=order.order_type.endswith("Limit"))

    # -- money ---------------------------------------------------------------------------------
    def _fill(self, order: SimOrder, price: Decimal, amount: Decimal, *, taker: bool, ts: int) -> Fill:
        spec = self.specs[order.market]
        wallet = self.wallets[order.account]
        notional = price * amount
        fee = notional * (self.taker_fee if taker else self.maker_fee)
        if order.side == "buy":
            cost = notional + fee
            wallet.debit_held(spec.quote, cost)
            order.on_hold -= cost
            wallet.credit(spec.base, amount)
        else:
            wallet.debit_held(spec.base, amount)
            order.on_hold -= amount
            wallet.credit(spec.quote, notional - fee)
        self._counter += 1
        fill = Fill(hashed_uuid(self.seed, "fill", self._counter), ts, amount, price, taker, fee, spec.quote)
        if self.switches.fee_settlement == "deferred":
            fill.settled = False
            fill.lookups_left = self.switches.settle_after_lookups
        order.fills.append(fill)
        order.filled_amount += amount
        order.filled_amount_quote += notional
        order.fee_paid += fee
        order.updated = ts
        return fill

    def _finish(self, order: SimOrder, status: str, ts: int, reason: str | None = None) -> None:
        """Final status: give back whatever the order still holds."""
        order.status = status
        order.updated = ts
        self._open.pop((order.market, order.order_id), None)
        if reason is not None:
            order.restatement_reason = reason
        if order.on_hold != 0:
            self.wallets[order.account].release(order.on_hold_currency, order.on_hold)
            order.on_hold = Decimal(0)

    def _execute(
        self, order: SimOrder, bids: list[Level], asks: list[Level], ts: int, *, resting_allowed: bool
    ) -> None:
        """Match an incoming (or just triggered) order as taker, then rest or finish it."""
        spec = self.specs[order.market]
        levels = asks if order.side == "buy" else bids
        limit_price = order.price if order.order_type in ("limit", "stopLossLimit", "takeProfitLimit") else None
        is_quote_sized = order.amount_quote is not None
        spend_cap = order.on_hold if order.side == "buy" and not is_quote_sized else None
        planned, complete = _walk(
            levels,
            side=order.side,
            limit_price=limit_price,
            base_target=None if is_quote_sized else order.amount_remaining,
            quote_target=order.amount_quote if is_quote_sized else None,
            spend_cap=spend_cap,
            decimals=spec.quantity_decimals,
            fee_rate=self.taker_fee,
        )
        if limit_price is not None and order.post_only and planned:
            self._finish(order, "canceledPostOnly", ts)
            return
        if order.time_in_force == "FOK" and not complete:
            self._finish(order, "canceledFOK", ts)
            return
        for price, amount in planned:
            self._fill(order, price, amount, taker=True, ts=ts)
        if is_quote_sized and order.side == "buy" and complete and order.fills:
            # the fee comes out of amountQuote: charge exactly what is left of it
            assert order.amount_quote is not None
            rest = order.amount_quote - order.filled_amount_quote - order.fee_paid
            if rest > 0:
                self.wallets[order.account].debit_held(spec.quote, rest)
                order.on_hold -= rest
                order.fee_paid += rest
                order.fills[-1].fee += rest
        if limit_price is None:
            self._finish(order, "filled" if complete and order.fills else "canceledMarketProtection", ts)
            return
        if order.amount_remaining <= 0:
            self._finish(order, "filled", ts)
        elif order.time_in_force == "IOC":
            self._finish(order, "canceledIOC", ts)
        elif not resting_allowed:
            self._finish(order, "canceled", ts)
        else:
            order.status = "partiallyFilled" if order.fills else "new"

    # -- lookups -------------------------------------------------------------------------------
    def _spec(self, market: str | None) -> MarketSpec:
        if market is None or market == "":
            raise required("market")
        spec = self.specs.get(market)
        if spec is None:
            raise invalid("market")
        return spec

    def _find(self, account: str, market: str, order_id: str | None, client_order_id: str | None) -> SimOrder:
        if client_order_id is not None:  # clientOrderId wins over orderId
            matches = self._by_cid.get((account, market, client_order_id), [])
            active = [o for o in matches if o.active]
            if active:
                return active[-1]
            if not matches or not self.switches.closed_orders_by_client_order_id:
                raise SimError(240)
            return matches[-1]
        if order_id is None:
            raise required("orderId")
        order = self._by_id.get((market, order_id))
        if order is None or order.account != account:
            raise SimError(240)
        return order

    def _check_view(self, key: ApiKey) -> None:
        if not key.can_view:
            raise SimError(311)

    def _check_order_read(self, key: ApiKey) -> None:
        if not (key.can_view or key.can_trade):
            raise SimError(311)

    @staticmethod
    def _check_trade(key: ApiKey) -> None:
        if not key.can_trade:
            raise SimError(310)

    @staticmethod
    def _operator_id(raw: object) -> int:
        if raw is None or raw == "":
            raise required("operatorId")
        if isinstance(raw, bool):
            raise invalid("operatorId")
        if isinstance(raw, str):
            try:
                raw = int(raw)
            except ValueError:
                raise invalid("operatorId") from None
        if not isinstance(raw, int) or not -(2**63) <= raw < 2**63:
            raise invalid("operatorId")
        return raw

    # -- public endpoints ----------------------------------------------------------------------
    def time(self) -> dict[str, Any]:
        return {"time": self.clock.now_ms()}

    def markets(self, query: Mapping[str, str]) -> Any:
        with self.lock:
            if "market" in query:
                return self._spec(query["market"]).to_json()
            return [spec.to_json() for spec in self.specs.values()]

    def assets(self, query: Mapping[str, str]) -> Any:
        with self.lock:
            assets: dict[str, dict[str, Any]] = {a["symbol"]: dict(a) for a in EXTRA_ASSETS}
            for spec in self.specs.values():
                assets[spec.base] = spec.asset_json()
            if "symbol" in query:
                if query["symbol"] not in assets:
                    raise invalid("symbol")
                return assets[query["symbol"]]
            return list(assets.values())

    def _selected(self, query: Mapping[str, str]) -> list[MarketSpec]:
        if "market" in query:
            return [self._spec(query["market"])]
        return list(self.specs.values())

    def _one_or_all(self, query: Mapping[str, str], rows: list[dict[str, Any]]) -> Any:
        return rows[0] if "market" in query else rows

    def ticker_price(self, query: Mapping[str, str]) -> Any:
        with self.lock:
            k = self.now_step()
            rows = [
                {"market": s.market, "price": wire(self.walks[s.market].shown_price(k))} for s in self._selected(query)
            ]
            return self._one_or_all(query, rows)

    def _best(self, market: str, k: int) -> dict[str, str]:
        bids, asks = self.walks[market].book(k, levels=1)
        return {
            "bid": wire(bids[0].price),
            "bidSize": wire(bids[0].size),
            "ask": wire(asks[0].price),
            "askSize": wire(asks[0].size),
        }

    def ticker_book(self, query: Mapping[str, str]) -> Any:
        with self.lock:
            k = self.now_step()
            rows = [{"market": s.market, **self._best(s.market, k)} for s in self._selected(query)]
            return self._one_or_all(query, rows)

    def ticker_24h(self, query: Mapping[str, str]) -> Any:
        with self.lock:
            now = self.clock.now_ms()
            k = self.now_step()
            rows = []
            for spec in self._selected(query):
                walk = self.walks[spec.market]
                first = max(walk.step_at(now - DAY_MS) + 1, walk.first_step() + 1)
                candles = [walk.step_candle(i) for i in range(first, k + 1)]
                volume = sum((c.volume for c in candles), Decimal(0))
                volume_quote = sum((c.volume * c.close for c in candles), Decimal(0))
                rows.append(
                    {
                        "market": spec.market,
                        "startTimestamp": now - DAY_MS,
                        "timestamp": now,
                        "open": wire(candles[0].open),
                        "openTimestamp": candles[0].ts_ms,
                        "high": wire(max(c.high for c in candles)),
                        "low": wire(min(c.low for c in candles)),
                        "last": wire(candles[-1].close),
                        "closeTimestamp": min(candles[-1].ts_ms + self.step_ms - 1, now),
                        **self._best(spec.market, k),
                        "volume": wire(volume),
                        "volumeQuote": wire(quantize_down(volume_quote, 2)),
                    }
                )
            return self._one_or_all(query, rows)

    def candles(self, market: str, query: Mapping[str, str]) -> Any:
        with self.lock:
            spec = self._spec(market)
            interval = query.get("interval")
            if interval is None:
                raise required("interval")
            if interval not in INTERVALS_MS and interval not in CALENDAR_INTERVALS:
                raise invalid("interval")
            limit = _int_param(query, "limit", 1, 1440, 1440)
            start = _int_param(query, "start", 0, 2**62, None)
            end = _int_param(query, "end", 0, 2**62, None)
            assert limit is not None
            return self.walks[spec.market].candles(interval, self.now_step(), start, end, limit)

    def book(self, market: str, query: Mapping[str, str]) -> Any:
        with self.lock:
            spec = self._spec(market)
            depth = _int_param(query, "depth", 1, 1000, 1000)
            assert depth is not None
            bids, asks = self.walks[spec.market].book(self.now_step(), levels=min(depth, BOOK_LEVELS))
            return {
                "market": spec.market,
                "nonce": self._nonce,
                "bids": [[wire(lv.price), wire(lv.size)] for lv in bids],
                "asks": [[wire(lv.price), wire(lv.size)] for lv in asks],
                "timestamp": self.clock.now_ms(),
            }

    def public_trades(self, market: str, query: Mapping[str, str]) -> Any:
        with self.lock:
            spec = self._spec(market)
            limit = _int_param(query, "limit", 1, 1000, 500)
            start = _int_param(query, "start", 0, 2**62, None)
            end = _int_param(query, "end", 0, 2**62, None)
            assert limit is not None
            return self.walks[spec.market].public_trades(self.now_step(), self.clock.now_ms(), start, end, limit)

    # -- orders --------------------------------------------------------------------------------
    def place_order(self, key: ApiKey, body: Any, *, signed_ms: int | None = None) -> tuple[SimOrder, dict[str, Any]]:
        """POST /order. Returns the order and the answer body (minimal when responseRequired=false).
        ``signed_ms``: the request's signed timestamp, shown by the admin API."""
        self._check_trade(key)
        if not isinstance(body, dict):
            raise SimError(102)
        for name in body:
            if name not in _ORDER_BODY_PARAMS:
                raise SimError(201, f"{name} body parameter is not supported.")
        with self.lock:
            self.sync()
            spec = self._spec(body.get("market"))
            side = body.get("side")
            if side is None:
                raise required("side")
            if side not in ("buy", "sell"):
                raise invalid("side")
            order_type = body.get("orderType")
            if order_type is None:
                raise required("orderType")
            if order_type not in ORDER_TYPES:
                raise invalid("orderType")
            operator_id = self._operator_id(body.get("operatorId"))
            client_order_id = body.get("clientOrderId")
            if client_order_id is not None and not is_uuid(client_order_id):
                raise invalid("clientOrderId")
            self._check_market_accepts(spec, order_type)
            if client_order_id is not None and any(
                o.active for o in self._by_cid.get((key.account, spec.market, client_order_id), [])
            ):
                raise SimError(220)
            order = self._new_order(
                key=key,
                spec=spec,
                body=body,
                side=side,
                order_type=order_type,
                operator_id=operator_id,
                client_order_id=client_order_id,
            )
            open_here = sum(1 for o in self._open.values() if o.market == spec.market and o.account == key.account)
            if open_here >= MAX_OPEN_ORDERS:
                raise SimError(235)
            order.signed_at = signed_ms
            self._reserve(order, spec)
            self._register(order)
            self._start(order, spec)
            if body.get("responseRequired") is False:
                minimal: dict[str, Any] = {"market": order.market, "orderId": order.order_id}
                if order.client_order_id is not None:
                    minimal["clientOrderId"] = order.client_order_id
                minimal.update(created=order.created, updated=order.updated)
                return order, minimal
            return order, order.to_json()

    @staticmethod
    def _check_market_accepts(spec: MarketSpec, order_type: str) -> None:
        if spec.status == "halted":
            raise SimError(423)
        if spec.status == "cancelOnly":
            raise SimError(424)
        if spec.status == "auctionMatching":
            raise SimError(426)
        if spec.status == "auction" and order_type != "limit":
            raise SimError(425)

    def _new_order(
        self,
        *,
        key: ApiKey,
        spec: MarketSpec,
        body: Mapping[str, Any],
        side: str,
        order_type: str,
        operator_id: int,
        client_order_id: str | None,
    ) -> SimOrder:
        # The first problem found is the one answered: the order of these checks is behaviour.
        sizes = _order_sizes(body, order_type)
        time_in_force, post_only, stp = _order_options(body, order_type)
        _check_precision(spec, sizes)
        self._check_notional(spec, side, sizes)
        amount, amount_quote, price, trigger = sizes.amount, sizes.amount_quote, sizes.price, sizes.trigger
        now = self.clock.now_ms()
        self._counter += 1
        return SimOrder(
            order_id=hashed_uuid(self.seed, "order", self._counter),
            market=spec.market,
            account=key.account,
            key=key.key,
            created=now,
            updated=now,
            side=side,
            order_type=order_type,
            operator_id=operator_id,
            client_order_id=client_order_id,
            amount=amount,
            amount_quote=amount_quote,
            price=price,
            time_in_force=time_in_force,
            post_only=post_only,
            self_trade_prevention=stp,
            trigger_amount=trigger,
            trigger_type="price" if trigger is not None else None,
            trigger_reference=body.get("triggerReference", "lastTrade") if trigger is not None else None,
            status="awaitingTrigger" if order_type in TRIGGER_TYPES else "new",
            fee_currency=spec.quote,
        )

    def _check_notional(self, spec: MarketSpec, side: str, sizes: _Sizes) -> None:
        """The order's worth in quote currency (at its price, its trigger or the best opposite
        level) within the market's order size limits."""
        bids, asks = self.walks[spec.market].book(self.now_step(), levels=1)
        if sizes.amount_quote is not None:
            notional = sizes.amount_quote
        else:
            assert sizes.amount is not None
            reference = sizes.price or sizes.trigger or (asks[0].price if side == "buy" else bids[0].price)
            notional = sizes.amount * reference
        if notional < spec.min_order_quote:
            raise SimError(
                217,
                f"Minimum order size in quote currency is {wire(spec.min_order_quote)} {spec.quote} "
                f"or {wire(spec.min_order_base)} {spec.base}.",
            )
        if notional > spec.max_order_quote:
            raise SimError(210, f"Amount exceeds the maximum allowed amount ({wire(spec.max_order_quote)}).")

    def _reserve(self, order: SimOrder, spec: MarketSpec) -> None:
        """Hold what the order may spend; 216 when the account does not have it."""
        wallet = self.wallets.setdefault(order.account, Wallet())
        bids, asks = self.walks[spec.market].book(self.now_step())
        fee = self.taker_fee
        if order.side == "buy":
            symbol = spec.quote
            if order.amount_quote is not None:
                need = order.amount_quote
            elif order.price is not None:
                need = order.price * (order.amount or Decimal(0)) * (1 + fee)
            elif order.trigger_amount is not None:
                # a triggered market buy may pay more than the trigger: hold 10 % extra
                need = order.trigger_amount * (order.amount or Decimal(0)) * (1 + fee) * Decimal("1.1")
            else:
                planned, _ = _walk(
                    asks,
                    side="buy",
                    limit_price=None,
                    base_target=order.amount,
                    quote_target=None,
                    spend_cap=None,
                    decimals=spec.quantity_decimals,
                    fee_rate=fee,
                )
                need = sum((p * a * (1 + fee) for p, a in planned), Decimal(0))
        else:
            symbol = spec.base
            if order.amount is not None:
                need = order.amount
            elif order.trigger_amount is not None:
                assert order.amount_quote is not None
                need = quantize_down(order.amount_quote / order.trigger_amount, spec.quantity_decimals)
                need = need * Decimal("1.1")
            else:
                assert order.amount_quote is not None
                planned, _ = _walk(
                    bids,
                    side="sell",
                    limit_price=None,
                    base_target=None,
                    quote_target=order.amount_quote,
                    spend_cap=None,
                    decimals=spec.quantity_decimals,
                    fee_rate=fee,
                )
                need = sum((a for _, a in planned), Decimal(0))
        if wallet.get(symbol).available < need:
            raise SimError(216)
        order.on_hold_currency = symbol
        order.on_hold = need
        wallet.hold(symbol, need)

    def _register(self, order: SimOrder) -> None:
        self.orders.append(order)
        self._by_id[(order.market, order.order_id)] = order
        self._open[(order.market, order.order_id)] = order
        if order.client_order_id is not None:
            self._by_cid.setdefault((order.account, order.market, order.client_order_id), []).append(order)
        self._nonce += 1

    def _start(self, order: SimOrder, spec: MarketSpec) -> None:
        now = order.created
        k = self.now_step()
        bids, asks = self.walks[spec.market].book(k)
        if spec.status == "auction":
            if order.time_in_force != "GTC":
                self._finish(order, "canceledAuction", now)
            return  # no matching during an auction: a GTC limit order rests
        if self._self_trade(order, now):
            return
        if order.status == "awaitingTrigger":
            if self._triggered(order, self.walks[spec.market].shown_price(k), bids, asks):
                self._fire_trigger(order, bids, asks, now)
            return
        self._execute(order, bids, asks, now, resting_allowed=True)

    def _self_trade(self, order: SimOrder, now: int) -> bool:
        """Apply self-trade prevention; True when the incoming order was cancelled by it."""
        if order.order_type in TRIGGER_TYPES:
            return False
        opposite = "sell" if order.side == "buy" else "buy"
        reach = order.price

        def would_trade(resting: SimOrder) -> bool:
            if resting.price is None or reach is None:
                return resting.price is not None
            return resting.price <= reach if order.side == "buy" else resting.price >= reach

        own = [
            o
            for o in self._open.values()
            if o is not order
            and o.active
            and o.status != "awaitingTrigger"
            and o.account == order.account
            and o.market == order.market
            and o.side == opposite
            and would_trade(o)
        ]
        if not own:
            return False
        mode = order.self_trade_prevention
        if mode in ("cancelOldest", "cancelBoth"):
            for resting in own:
                self._finish(resting, "canceledSelfTradePrevention", now, "cancelOnSelfTradePrevention")
        if mode == "cancelOldest":
            return False
        self._finish(order, "canceledSelfTradePrevention", now, "cancelOnSelfTradePrevention")
        return True

    def update_order(self, key: ApiKey, body: Any) -> Any:
        """PUT /order: the permission and operatorId rules apply; updating itself is not simulated."""
        self._check_trade(key)
        if not isinstance(body, dict):
            raise SimError(102)
        self._operator_id(body.get("operatorId"))
        raise SimError(110, "Updating orders is not supported by the simulator.")

    def get_order(self, key: ApiKey, query: Mapping[str, str]) -> Any:
        self._check_order_read(key)
        with self.lock:
            self.sync()
            spec = self._spec(query.get("market"))
            client_order_id = query.get("clientOrderId")
            order_id = query.get("orderId")
            if client_order_id is None and order_id is None:
                raise required("orderId")
            if client_order_id is not None and not is_uuid(client_order_id):
                raise invalid("clientOrderId")
            if client_order_id is None and not is_uuid(order_id):
                raise invalid("orderId")
            order = self._find(key.account, spec.market, order_id, client_order_id)
            answer = order.to_json()
            order.looked_up()
            return answer

    def cancel_order(self, key: ApiKey, query: Mapping[str, str]) -> Any:
        self._check_trade(key)
        with self.lock:
            self.sync()
            spec = self._spec(query.get("market"))
            operator_id = self._operator_id(query.get("operatorId"))
            client_order_id = query.get("clientOrderId")
            order_id = query.get("orderId")
            if client_order_id is None and order_id is None:
                raise required("orderId")
            if client_order_id is not None and not is_uuid(client_order_id):
                raise invalid("clientOrderId")
            if client_order_id is None and not is_uuid(order_id):
                raise invalid("orderId")
            if spec.status in ("halted", "auctionMatching"):
                raise SimError(423 if spec.status == "halted" else 426)
            order = self._find(key.account, spec.market, order_id, client_order_id)
            if not order.active:
                raise SimError(233)
            self._finish(order, "canceled", self.clock.now_ms())
            self._nonce += 1
            answer: dict[str, Any] = {"orderId": order.order_id}
            if order.client_order_id is not None:
                answer["clientOrderId"] = order.client_order_id
            answer["operatorId"] = operator_id
            return answer

    def cancel_orders(self, key: ApiKey, query: Mapping[str, str]) -> Any:
        self._check_trade(key)
        with self.lock:
            self.sync()
            operator_id = self._operator_id(query.get("operatorId"))
            market = query.get("market")
            if market is not None:
                self._spec(market)
            result = []
            for order in list(self._open.values()):
                if order.account == key.account and market in (None, order.market):
                    if self.specs[order.market].status in ("halted", "auctionMatching"):
                        continue
                    self._finish(order, "canceled", self.clock.now_ms())
                    result.append({"orderId": order.order_id, "operatorId": operator_id})
            return result

    def _history_window(self, query: Mapping[str, str]) -> tuple[int, int | None, int | None]:
        """``limit``, ``start`` and ``end`` of a history request, the range limit applied: a span
        longer than the limit is 205; without ``start`` only the limit's span before ``end`` is seen."""
        limit = _int_param(query, "limit", 1, 1000, 500)
        start = _int_param(query, "start", 0, 2**62, None)
        end = _int_param(query, "end", 0, 2**62, None)
        assert limit is not None
        if start is not None and end is not None and start > end:
            raise invalid("start")
        span = self.switches.history_range_limit_ms
        if span is not None:
            until = end if end is not None else self.clock.now_ms()
            if start is None:
                start = until - span
            elif until - start > span:
                raise invalid("start")
        return limit, start, end

    @staticmethod
    def _within(ts: int, start: int | None, end: int | None) -> bool:
        return (start is None or ts >= start) and (end is None or ts <= end)

    def list_orders(self, key: ApiKey, query: Mapping[str, str]) -> Any:
        self._check_order_read(key)
        with self.lock:
            self.sync()
            spec = self._spec(query.get("market"))
            limit, start, end = self._history_window(query)
            rows: list[tuple[int, SimOrder | dict[str, Any]]] = [
                (o.created, o)
                for o in reversed(self.orders)
                if o.account == key.account and o.market == spec.market and self._within(o.created, start, end)
            ]
            rows += [
                (created, raw)
                for account, market, created, raw, _ in self._foreign
                if account == key.account and market == spec.market and self._within(created, start, end)
            ]
            rows.sort(key=lambda row: row[0], reverse=True)  # stable: newest placement first on a tie
            answer = []
            for _, row in rows[:limit]:
                if isinstance(row, SimOrder):
                    answer.append(row.to_json())
                    row.looked_up()
                else:
                    answer.append(dict(row))
            return answer

    def open_orders(self, key: ApiKey, query: Mapping[str, str]) -> Any:
        self._check_order_read(key)
        with self.lock:
            self.sync()
            market = query.get("market")
            if market is not None:
                self._spec(market)
            base = query.get("base")
            shown = [
                o
                for o in reversed(self._open.values())
                if o.account == key.account and market in (None, o.market) and base in (None, self.specs[o.market].base)
            ]
            answer = [o.to_json() for o in shown]
            for order in shown:
                order.looked_up()
            return answer

    def trades(self, key: ApiKey, query: Mapping[str, str]) -> Any:
        self._check_view(key)
        with self.lock:
            self.sync()
            spec = self._spec(query.get("market"))
            limit, start, end = self._history_window(query)
            own = [
                (f.timestamp, o, f)
                for o in self.orders
                if o.account == key.account and o.market == spec.market
                for f in o.fills
                if self._within(f.timestamp, start, end)
            ]
            foreign = [
                (created, raw)
                for account, market, created, _, trades in self._foreign
                if account == key.account and market == spec.market
                for raw in trades
                if self._within(created, start, end)
            ]
            rows: list[tuple[int, dict[str, Any], Fill | None]] = [(ts, o.trade_json(f), f) for ts, o, f in own]
            rows += [(ts, dict(raw), None) for ts, raw in foreign]
            rows.sort(key=lambda r: r[0], reverse=True)
            for _, _, fill in rows[:limit]:
                if fill is not None:
                    fill.looked_up()
            return [row for _, row, _ in rows[:limit]]

    def balance(self, key: ApiKey, query: Mapping[str, str]) -> Any:
        self._check_view(key)
        with self.lock:
            self.sync()
            wallet = self.wallets.setdefault(key.account, Wallet())
            symbol = query.get("symbol")
            if symbol is not None:
                known = {"EUR"} | {s.base for s in self.specs.values()} | set(wallet.holdings)
                if symbol not in known:
                    raise invalid("symbol")
                holding = wallet.get(symbol)
                return [{"symbol": symbol, "available": wire(holding.available), "inOrder": wire(holding.in_order)}]
            return [
                {"symbol": s, "available": wire(h.available), "inOrder": wire(h.in_order)}
                for s, h in wallet.holdings.items()
                if h.available + h.in_order > 0
            ]

    def account(self, key: ApiKey) -> Any:
        self._check_view(key)
        capabilities = ["buy", "sell", "depositCrypto", "depositFiat", "withdrawCrypto", "withdrawFiat"]
        return {
            "fees": {"tier": 0, "volume": "0.00", "maker": wire(self.maker_fee), "taker": wire(self.taker_fee)},
            "capabilities": capabilities,
        }

    def fees(self, key: ApiKey, query: Mapping[str, str]) -> Any:
        self._check_view(key)
        with self.lock:
            if "market" in query:
                self._spec(query["market"])
            return {"tier": "0", "volume": "0.00", "taker": wire(self.taker_fee), "maker": wire(self.maker_fee)}

    # -- admin ---------------------------------------------------------------------------------
    def admin_orders(self, key: str | None, account: str | None, market: str | None) -> list[dict[str, Any]]:
        with self.lock:
            self.sync()
            return [
                {"key": o.key, "account": o.account, "fault": o.fault, "signedAt": o.signed_at, "order": o.to_json()}
                for o in self.orders
                if key in (None, o.key) and account in (None, o.account) and market in (None, o.market)
            ]

    def admin_settle_fees(self, market: str | None, client_order_id: str | None) -> int:
        """Settle every unsettled fill (of ``market``/``client_order_id`` when given); returns how many."""
        settled = 0
        with self.lock:
            for order in self.orders:
                if market in (None, order.market) and client_order_id in (None, order.client_order_id):
                    for fill in order.fills:
                        if not fill.settled:
                            fill.settled = True
                            settled += 1
        return settled

    def admin_add_foreign(
        self,
        *,
        account: str,
        market: str,
        count: int,
        order_type: str,
        status: str,
        age_ms: int,
        client_order_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Rows another user of ``account`` left in ``market``'s history: orders of an unknown
        ``order_type`` and ``status`` (each with one fill in ``/trades``), in shapes no strict parser
        takes (a float amount, ``fills: null``; trades with an unknown side, a string ``settled``, no
        price), one per millisecond back from ``age_ms`` ago. Half carry another clientOrderId, half none — or all carry ``client_order_id`` when
        given (a row that is "ours" in a shape nobody parses). Returns the order rows."""
        rows = []
        with self.lock:
            spec = self._spec(market)
            newest = self.clock.now_ms() - age_ms
            for i in range(count):
                created = newest - i  # one per millisecond, newest first
                self._counter += 1
                order_id = hashed_uuid(self.seed, "foreign", self._counter)
                order: dict[str, Any] = {"orderId": order_id}
                if client_order_id is not None:
                    order["clientOrderId"] = client_order_id
                elif i % 2 == 0:
                    order["clientOrderId"] = str(uuid.uuid4())
                order.update(
                    market=spec.market,
                    created=created,
                    updated=created,
                    status=status,
                    side="buy" if i % 2 else "sell",
                    orderType=order_type,
                    amount=0.5,
                    fills=None,
                    operatorId=-(2**63),
                )
                trade: dict[str, Any] = {
                    "id": hashed_uuid(self.seed, "foreign-fill", self._counter),
                    "orderId": order_id,
                }
                if "clientOrderId" in order:
                    trade["clientOrderId"] = order["clientOrderId"]
                trade.update(timestamp=created, market=spec.market, side="both", amount="0.5", settled="pending")
                self._foreign.append((account, spec.market, created, order, [trade]))
                rows.append(order)
        return rows

    def admin_balances(self, account: str) -> dict[str, dict[str, str]]:
        with self.lock:
            self.sync()
            wallet = self.wallets.setdefault(account, Wallet())
            return {
                s: {"available": wire(h.available), "inOrder": wire(h.in_order)} for s, h in wallet.holdings.items()
            }

    def admin_set_balance(self, account: str, symbol: str, available: Decimal) -> None:
        with self.lock:
            self.wallets.setdefault(account, Wallet()).set(symbol, available)

    def admin_prices(self) -> dict[str, str]:
        with self.lock:
            self.sync()
            k = self.now_step()
            return {m: wire(w.shown_price(k)) for m, w in self.walks.items()}

    def admin_set_price(self, market: str, price: Decimal) -> None:
        with self.lock:
            self.sync()
            spec = self._spec(market)
            self.walks[spec.market].set_price(self.now_step(), price)
            self._nonce += 1
            # resting orders meet the new price at once, as they would on the next step
            self._match_resting(self.now_step(), only_market=spec.market)

    def admin_set_market_status(self, market: str, status: str) -> None:
        with self.lock:
            spec = self._spec(market)
            self.specs[market] = spec.with_status(status)
            self.walks[market].spec = self.specs[market]

    def tag_fault(self, order: SimOrder, kind: str) -> None:
        with self.lock:
            order.fault = kind

    def admin_add_key(self, key: ApiKey) -> None:
        with self.lock:
            self.keys[key.key] = key
            self.wallets.setdefault(key.account, Wallet())

    def key_for(self, presented: str) -> ApiKey | None:
        with self.lock:
            return self.keys.get(presented)
