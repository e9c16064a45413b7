"""The all-markets ticker reads, which only these tests make (the services ask per market)."""

from __future__ import annotations

from shared.exchange.market import Ticker24h, TickerPrice
from shared.exchange.public import PublicMarketData
from shared.exchange.wire import as_list, as_mapping


class AllMarketsData(PublicMarketData):
    """PublicMarketData plus ``GET /ticker/price`` and ``GET /ticker/24h`` for every market."""

    def ticker_prices(self) -> tuple[TickerPrice, ...]:
        return self._gateway.read_as(
            "ticker/price",
            lambda sdk: sdk.tickerPrice({}),
            lambda p: tuple(TickerPrice.from_json(as_mapping(r, "row")) for r in as_list(p, "rows")),
        )

    def tickers_24h(self) -> tuple[Ticker24h, ...]:
        return self._gateway.read_as(
            "ticker/24h",
            lambda sdk: sdk.ticker24h({}),
            lambda p: tuple(Ticker24h.from_json(as_mapping(r, "row")) for r in as_list(p, "rows")),
        )
