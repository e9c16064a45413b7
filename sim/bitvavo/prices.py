"""Price paths, candles, order books and public trades, all derived from one seeded random walk.

Step ``k`` of a market is the ``k``-th ``step_ms`` interval after the simulator started (``k < 0``
is generated history). Each step's return comes from a hash of (seed, market, k), so the path is
the same for the same seed whatever order anything is asked in, and all arithmetic is Decimal.
``set_price`` pins a step to a price; later steps walk on from there with the same returns.
A step's candle is open = previous close, close = this step's price, high/low a hashed wick
around them. The order book is synthetic liquidity around the step's price: the simulator's own
resting orders are not shown in it and fills do not consume it.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal

from sim.bitvavo.markets import MarketSpec, wire

_CTX = Context(prec=20)
BOOK_LEVELS = 50
HALF_SPREAD = Decimal("0.0002")
LEVEL_GAP = Decimal("0.0005")

INTERVALS_MS: dict[str, int] = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
}
CALENDAR_INTERVALS = ("1W", "1M")


def round_sig(value: Decimal, digits: int, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """``value`` rounded to ``digits`` significant digits."""
    if value == 0:
        return value
    exponent = value.adjusted() - digits + 1
    return value.quantize(Decimal(1).scaleb(exponent), rounding=rounding)


def significant_digits(value: Decimal) -> int:
    digits = value.normalize().as_tuple().digits
    return len(digits)


def quantize_down(value: Decimal, decimals: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_DOWN)


def _hash_int(*parts: object) -> int:
    data = "/".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def hashed_uuid(*parts: object) -> str:
    """A UUID-format id that is a pure function of ``parts`` (deterministic per seed)."""
    data = "/".join(str(p) for p in parts).encode()
    return str(uuid.UUID(bytes=hashlib.blake2b(data, digest_size=16).digest(), version=4))


def bucket_start(ts_ms: int, interval: str) -> int:
    """Start of the candle bucket holding ``ts_ms`` (weeks start Monday 00:00 UTC)."""
    if interval in INTERVALS_MS:
        size = INTERVALS_MS[interval]
        return ts_ms - ts_ms % size
    day = ts_ms - ts_ms % 86_400_000
    moment = datetime.fromtimestamp(day / 1000, tz=UTC)
    if interval == "1W":
        return day - moment.weekday() * 86_400_000
    first = moment.replace(day=1)
    return int(first.timestamp() * 1000)


@dataclass(frozen=True)
class Level:
    price: Decimal
    size: Decimal


@dataclass(frozen=True)
class StepCandle:
    ts_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


class PriceWalk:
    """The price path of one market; not thread-safe (the simulator holds its lock)."""

    def __init__(self, spec: MarketSpec, seed: int, start_step: int, step_ms: int, history_steps: int):
        self.spec = spec
        self.seed = seed
        self.start_step = start_step
        self.step_ms = step_ms
        self.history_steps = history_steps
        self._future: list[Decimal] = [spec.initial_price]
        self._history: list[Decimal] = []  # index j is step -1 - j
        self._overrides: dict[int, Decimal] = {}
        self._candle_cache: dict[int, StepCandle] = {}
        self._book_cache: dict[int, tuple[list[Level], list[Level]]] = {}

    # -- the path --------------------------------------------------------------------------------
    def _return(self, k: int) -> Decimal:
        amplitude = self.spec.volatility_bps
        draws = 0
        for i in range(3):
            draws += _hash_int(self.seed, self.spec.market, k, "r", i) % (2 * amplitude + 1) - amplitude
        return Decimal(draws) / Decimal(30_000)

    def price(self, k: int) -> Decimal:
        """The close of step ``k`` (full precision)."""
        if k >= 0:
            while len(self._future) <= k:
                n = len(self._future)
                pinned = self._overrides.get(n)
                previous = self._future[-1]
                self._future.append(pinned if pinned is not None else _CTX.multiply(previous, 1 + self._return(n)))
            return self._future[k]
        index = -1 - k
        while len(self._history) <= index:
            later = self._history[-1] if self._history else self._future[0]
            j = len(self._history)  # computing step -1 - j from step -j
            self._history.append(_CTX.divide(later, 1 + self._return(-j)))
        return self._history[index]

    def set_price(self, k: int, price: Decimal) -> None:
        """Pin step ``k`` (≥ 0) to ``price``; later steps walk on from it."""
        self._overrides[k] = price
        self._candle_cache = {i: c for i, c in self._candle_cache.items() if i < k}
        self._book_cache.clear()
        del self._future[max(k, 1) :]
        if k == 0:
            self._future[0] = price
            self._history.clear()
        else:
            self.price(k)

    def on_tick(self, value: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
        """``value`` on the market's tick grid (unchanged when the market has no tick size)."""
        tick = self.spec.tick_size
        if tick is None or value == 0:
            return value
        ticks = (value / tick).quantize(Decimal(1), rounding=rounding)
        return max(ticks, Decimal(1)) * tick

    def shown_price(self, k: int) -> Decimal:
        """The price as the market shows it: ``price_precision`` significant digits, on the tick grid."""
        return self.on_tick(round_sig(self.price(k), self.spec.price_precision))

    # -- time ----------------------------------------------------------------------------------
    def step_at(self, ts_ms: int) -> int:
        return ts_ms // self.step_ms - self.start_step

    def step_start_ms(self, k: int) -> int:
        return (self.start_step + k) * self.step_ms

    def first_step(self) -> int:
        return -self.history_steps

    # -- candles -------------------------------------------------------------------------------
    def step_candle(self, k: int) -> StepCandle:
        cached = self._candle_cache.get(k)
        if cached is None:
            cached = self._candle_cache[k] = self._make_step_candle(k)
        return cached

    def _make_step_candle(self, k: int) -> StepCandle:
        opened = self.shown_price(k - 1)
        closed = self.shown_price(k)
        wick = Decimal(_hash_int(self.seed, self.spec.market, k, "wick") % 8) / Decimal(10_000)
        high = round_sig(max(opened, closed) * (1 + wick), self.spec.price_precision, ROUND_CEILING)
        low = round_sig(min(opened, closed) * (1 - wick), self.spec.price_precision, ROUND_FLOOR)
        quote_volume = Decimal(2_000 + _hash_int(self.seed, self.spec.market, k, "vol") % 48_000)
        volume = quantize_down(quote_volume / closed, self.spec.quantity_decimals)
        return StepCandle(self.step_start_ms(k), opened, high, low, closed, volume)

    def candles(
        self, interval: str, now_step: int, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[list[object]]:
        """``[ts, open, high, low, close, volume]`` rows, newest first; ranges before the generated
        history are omitted, as Bitvavo omits intervals without trades."""
        first = self.first_step() + 1
        last = now_step
        if end_ms is not None:
            last = min(last, self.step_at(end_ms))
        if start_ms is not None:
            first = max(first, self.step_at(bucket_start(start_ms, interval)))
        rows: list[list[object]] = []
        current: list[StepCandle] = []
        current_bucket: int | None = None

        def flush() -> None:
            if not current or current_bucket is None:
                return
            newest, oldest = current[0], current[-1]
            ts = current_bucket
            if (start_ms is None or ts >= bucket_start(start_ms, interval)) and (end_ms is None or ts <= end_ms):
                rows.append(
                    [
                        ts,
                        wire(oldest.open),
                        wire(max(c.high for c in current)),
                        wire(min(c.low for c in current)),
                        wire(newest.close),
                        wire(sum((c.volume for c in current), Decimal(0))),
                    ]
                )

        k = last
        while k >= first and len(rows) < limit:
            candle = self.step_candle(k)
            bucket = bucket_start(candle.ts_ms, interval)
            if bucket != current_bucket:
                flush()
                current = []
                current_bucket = bucket
                if len(rows) >= limit:
                    break
            current.append(candle)
            k -= 1
        if len(rows) < limit:
            flush()
        return rows[:limit]

    # -- book ----------------------------------------------------------------------------------
    def book(self, k: int, levels: int = BOOK_LEVELS) -> tuple[list[Level], list[Level]]:
        """Bids (best first) and asks (best first) around step ``k``'s price (copies: callers may
        keep them; a few recent steps are cached)."""
        cached = self._book_cache.get(k)
        if cached is None:
            if len(self._book_cache) >= 4:
                self._book_cache.pop(next(iter(self._book_cache)))
            cached = self._book_cache[k] = self._make_book(k)
        bids, asks = cached
        return bids[:levels], asks[:levels]

    def _make_book(self, k: int, levels: int = BOOK_LEVELS) -> tuple[list[Level], list[Level]]:
        mid = self.price(k)
        digits = self.spec.price_precision
        bids: list[Level] = []
        asks: list[Level] = []
        for i in range(levels):
            offset = HALF_SPREAD + LEVEL_GAP * i
            bid = self.on_tick(round_sig(_CTX.multiply(mid, 1 - offset), digits, ROUND_FLOOR), ROUND_FLOOR)
            ask = self.on_tick(round_sig(_CTX.multiply(mid, 1 + offset), digits, ROUND_CEILING), ROUND_CEILING)
            if bids and bid >= bids[-1].price:
                bid = bids[-1].price - self._unit(bids[-1].price, digits)
            if asks and ask <= asks[-1].price:
                ask = asks[-1].price + self._unit(asks[-1].price, digits)
            if not asks and ask <= bid:
                ask = bid + self._unit(bid, digits)
            if bid <= 0:
                break
            bids.append(Level(bid, self._level_size(k, "bid", i, bid)))
            asks.append(Level(ask, self._level_size(k, "ask", i, ask)))
        return bids, asks

    def _unit(self, price: Decimal, digits: int) -> Decimal:
        """The smallest price step at ``price``: a significant digit, never finer than the tick."""
        unit = _unit(price, digits)
        tick = self.spec.tick_size
        if tick is None:
            return unit
        return max(unit, tick) if unit % tick == 0 else tick * ((unit // tick) + 1)

    def _level_size(self, k: int, side: str, i: int, price: Decimal) -> Decimal:
        quote_value = Decimal(1_000 + _hash_int(self.seed, self.spec.market, k, side, i) % 9_000)
        size = quantize_down(quote_value / price, self.spec.quantity_decimals)
        return max(size, self.spec.min_order_base)

    # -- public trades -------------------------------------------------------------------------
    def public_trades(
        self, now_step: int, now_ms: int, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[dict[str, object]]:
        result: list[dict[str, object]] = []
        k = now_step
        while k >= self.first_step() + 1 and len(result) < limit:
            for i in (1, 0):
                ts = self.step_start_ms(k) + (i + 1) * self.step_ms // 3
                if ts > now_ms or (end_ms is not None and ts > end_ms):
                    continue
                if start_ms is not None and ts < start_ms:
                    return result
                h = _hash_int(self.seed, self.spec.market, k, "trade", i)
                price = self.shown_price(k)
                amount = quantize_down(Decimal(20 + h % 2_000) / price, self.spec.quantity_decimals)
                result.append(
                    {
                        "id": hashed_uuid(self.seed, self.spec.market, k, "trade", i),
                        "timestamp": ts,
                        "amount": wire(max(amount, self.spec.min_order_base)),
                        "price": wire(price),
                        "side": "buy" if h % 2 else "sell",
                    }
                )
                if len(result) >= limit:
                    return result
            k -= 1
        return result


def _unit(price: Decimal, digits: int) -> Decimal:
    return Decimal(1).scaleb(price.adjusted() - digits + 1)
