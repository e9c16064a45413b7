"""The simulated markets: their static specification (what ``GET /markets`` and ``/assets`` show).

The default list holds thirteen EUR markets with minimums and precisions of the kind Bitvavo
publishes: ``minOrderInQuoteAsset`` 5 EUR everywhere, ``minOrderInBaseAsset`` about 5 EUR worth of
the base asset, prices walked at five significant digits, and the quantity decimals of the asset.

On the wire they take the live shapes (facts sheet, "Corrections"): every ``/markets`` field is a
string (``"pricePrecision":"0"`` — deprecated, price precision comes from ``tickSize`` — and
``"quantityDecimals":"8"``, ``"maxOpenOrders":"100"``), minimums carry their decimals
(``"0.00006000"``, ``"5.00"``), ``tickSize`` is set per market (BTC-EUR ``"1.00"``, LTC-EUR
``"0.00100"``, the others one unit of the fifth significant digit of their starting price) and
``/assets`` entries have the full shape, EUR and a delisted asset included.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

ORDER_TYPES = ("market", "limit", "stopLoss", "stopLossLimit", "takeProfit", "takeProfitLimit")
MARKET_STATUSES = ("trading", "halted", "auction", "auctionMatching", "cancelOnly")


def wire(value: Decimal) -> str:
    """A Decimal as Bitvavo writes it: plain notation, no exponent, no trailing zeros."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def fixed(value: Decimal, decimals: int) -> str:
    """A Decimal with exactly ``decimals`` places, as ``/markets`` writes minimums and maximums."""
    return format(value.quantize(Decimal(1).scaleb(-decimals)), "f")


def default_tick(price: Decimal) -> Decimal:
    """One unit of the fifth significant digit of ``price`` (the walk shows five)."""
    return Decimal(1).scaleb(price.adjusted() - 4)


@dataclass(frozen=True)
class MarketSpec:
    """One market. ``initial_price`` is where the seeded random walk starts; ``volatility_bps``
    bounds one step's move (three summed draws of ±volatility_bps/3 basis points)."""

    market: str
    initial_price: Decimal
    min_order_base: Decimal
    quantity_decimals: int
    asset_name: str = ""
    price_precision: int = 5
    min_order_quote: Decimal = Decimal("5")
    max_order_base: Decimal = Decimal("1000000000")
    max_order_quote: Decimal = Decimal("1000000000")
    notional_decimals: int = 2
    tick_size: Decimal | None = None
    """Limit prices must be multiples of it (422); written as given (``Decimal("1.00")`` → ``"1.00"``)."""
    status: str = "trading"
    fee_category: str = "A"
    volatility_bps: int = 12

    @property
    def base(self) -> str:
        return self.market.split("-", 1)[0]

    @property
    def quote(self) -> str:
        return self.market.split("-", 1)[1]

    def with_status(self, status: str) -> MarketSpec:
        if status not in MARKET_STATUSES:
            raise ValueError(f"unknown market status {status!r}")
        return replace(self, status=status)

    def to_json(self) -> dict[str, Any]:
        return {
            "market": self.market,
            "status": self.status,
            "base": self.base,
            "quote": self.quote,
            "pricePrecision": "0",
            "minOrderInBaseAsset": fixed(self.min_order_base, self.quantity_decimals),
            "minOrderInQuoteAsset": fixed(self.min_order_quote, self.notional_decimals),
            "maxOrderInBaseAsset": fixed(self.max_order_base, self.quantity_decimals),
            "maxOrderInQuoteAsset": fixed(self.max_order_quote, self.notional_decimals),
            "quantityDecimals": str(self.quantity_decimals),
            "notionalDecimals": str(self.notional_decimals),
            "tickSize": None if self.tick_size is None else format(self.tick_size, "f"),
            "maxOpenOrders": "100",
            "orderTypes": list(ORDER_TYPES),
            "feeCategory": self.fee_category,
        }

    def asset_json(self) -> dict[str, Any]:
        return {
            "symbol": self.base,
            "name": self.asset_name or self.base,
            "decimals": str(self.quantity_decimals),
            "depositFee": "0",
            "depositConfirmations": "10",
            "depositStatus": "OK",
            "withdrawalFee": "0",
            "withdrawalMinAmount": wire(self.min_order_base),
            "withdrawalStatus": "OK",
            "networks": [self.base],
            "message": "",
        }


# Assets /assets lists beside the markets' bases: the quote currency, and one delisted coin.
EXTRA_ASSETS: tuple[dict[str, Any], ...] = (
    {
        "symbol": "EUR",
        "name": "Euro",
        "decimals": "2",
        "depositFee": "0",
        "depositConfirmations": "0",
        "depositStatus": "OK",
        "withdrawalFee": "0",
        "withdrawalMinAmount": "0",
        "withdrawalStatus": "OK",
        "networks": ["SEPA"],
        "message": "",
    },
    {
        "symbol": "XEM",
        "name": "NEM",
        "decimals": "6",
        "depositFee": "0",
        "depositConfirmations": "0",
        "depositStatus": "DELISTED",
        "withdrawalFee": "4",
        "withdrawalMinAmount": "8",
        "withdrawalStatus": "DELISTED",
        "networks": ["XEM"],
        "message": "This asset has been delisted.",
    },
)


def _m(
    market: str, price: str, min_base: str, decimals: int, name: str, *, vol: int = 12, tick: str | None = None
) -> MarketSpec:
    return MarketSpec(
        market=market,
        initial_price=Decimal(price),
        tick_size=Decimal(tick) if tick is not None else default_tick(Decimal(price)),
        min_order_base=Decimal(min_base),
        quantity_decimals=decimals,
        asset_name=name,
        volatility_bps=vol,
    )


DEFAULT_MARKETS: tuple[MarketSpec, ...] = (
    _m("BTC-EUR", "85000", "0.00006", 8, "Bitcoin", vol=9, tick="1.00"),
    _m("ETH-EUR", "3000", "0.0017", 8, "Ethereum", vol=12),
    _m("SOL-EUR", "150", "0.034", 8, "Solana", vol=15),
    _m("XRP-EUR", "2.1", "2.4", 6, "XRP", vol=15),
    _m("ADA-EUR", "0.65", "7.7", 6, "Cardano", vol=15),
    _m("DOGE-EUR", "0.18", "28", 6, "Dogecoin", vol=18),
    _m("DOT-EUR", "4.5", "1.12", 8, "Polkadot", vol=15),
    _m("LINK-EUR", "15", "0.34", 8, "Chainlink", vol=15),
    _m("LTC-EUR", "85", "0.06", 8, "Litecoin", vol=12, tick="0.00100"),
    _m("AVAX-EUR", "22", "0.23", 8, "Avalanche", vol=15),
    _m("TRX-EUR", "0.22", "23", 6, "TRON", vol=10),
    _m("XLM-EUR", "0.3", "17", 7, "Stellar", vol=12),
    _m("SHIB-EUR", "0.000012", "420000", 2, "Shiba Inu", vol=20),
)
