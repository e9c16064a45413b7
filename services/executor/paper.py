"""Paper mode (freqtrade's dry-run): everything as live except that no order is sent.

Validators, the claim and the state machine run exactly as in live mode; the "order" fills at
once at the current public price, with the configured taker fee taken the way Bitvavo takes it
(out of ``amountQuote`` for a quote-sized buy, out of the proceeds for a sell). The balance the
balance check sees is a paper wallet: the configured EUR minus what paper fills spent, and the
base asset they bought. This venue holds no trade key and never talks to a private endpoint.

Paper prices (the price guard's and the fill's) are reused for at most ``price_max_age_seconds``
(``EXECUTOR_PAPER_PRICE_MAX_AGE_SECONDS``, 1 s by default): nothing is sent, so a price a moment
old costs no money, and paper mode at full speed does not spend the public weight budget on one
ticker request per execution. Live mode asks for a fresh price every time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from decimal import ROUND_DOWN, Decimal

from services.executor import repository
from services.executor.model import Absent, Fill, Lookup, OrderView, Side, Status
from services.executor.recent import Recent
from services.executor.venue import Markets, PublicReads
from shared.clock import Clock
from shared.db import Database
from shared.exchange.errors import ExchangeError, NotSentError, SigningDeadlinePassedError
from shared.exchange.weights import WeightTally
from shared.exchange.wire import to_ms

log = logging.getLogger(__name__)

_QUOTE_STEP = Decimal("0.00000001")


class PaperVenue(PublicReads):
    """Fills at the public price; nothing leaves for the exchange's private API."""

    mode = "paper"

    def __init__(
        self,
        markets: Markets,
        db: Database,
        clock: Clock,
        *,
        balance_eur: Decimal,
        fee_rate: Decimal,
        price_max_age_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(markets)
        self._db = db
        self._clock = clock
        self._balance_eur = balance_eur
        self._fee_rate = fee_rate
        self._prices: Recent[str, Decimal] = Recent(price_max_age_seconds, clock=monotonic)

    def price(self, market: str) -> Decimal:
        """The public price, at most ``price_max_age_seconds`` old."""
        return self._prices.get(market, lambda: self._markets.price(market))

    def verify(self) -> None:
        try:
            self._markets.names()
        except ExchangeError as exc:  # public data may come back; paper mode can wait for it
            log.warning("paper mode: public market data unreachable at startup (%s)", type(exc).__name__)

    def free_balance(self, symbol: str, market: str) -> Decimal:
        with self._db.transaction(None) as conn:
            eur_spent, base_held = repository.paper_wallet(conn, market)
        if symbol == "EUR":
            return self._balance_eur - eur_spent
        return base_held

    def exchange_now_ms(self, *, fresh: bool = False) -> int:
        """Paper mode has no exchange: its time is the local clock."""
        return to_ms(self._clock.now())

    def weight_tally(self) -> AbstractContextManager[WeightTally]:
        return nullcontext(WeightTally())  # nothing is sent to a private endpoint

    def place(
        self,
        *,
        market: str,
        side: Side,
        amount_quote: Decimal,
        client_order_id: str,
        sign_by_ms: int,
        amount: Decimal | None = None,
    ) -> OrderView:
        now_ms = self.exchange_now_ms()
        if now_ms > sign_by_ms:  # the same deadline rule as live, so both modes fail alike
            raise SigningDeadlinePassedError(
                f"paper: {now_ms} is past the signing deadline {sign_by_ms}", now_ms=now_ms, deadline_ms=sign_by_ms
            )
        try:
            price = self.price(market)
            info = self._markets.info(market)
        except ExchangeError as exc:
            raise NotSentError(f"paper fill needs the public price: {type(exc).__name__}") from exc
        decimals = 8 if info is None else info.quantity_decimals
        step = Decimal(1).scaleb(-decimals)
        if side is Side.BUY:
            filled_quote = (amount_quote / (1 + self._fee_rate)).quantize(_QUOTE_STEP, rounding=ROUND_DOWN)
            fee = amount_quote - filled_quote
            amount = (filled_quote / price).quantize(step, rounding=ROUND_DOWN)
        else:
            if amount is None:
                amount = (amount_quote / price).quantize(step, rounding=ROUND_DOWN)
            filled_quote = amount * price
            fee = (filled_quote * self._fee_rate).quantize(_QUOTE_STEP, rounding=ROUND_DOWN)
        if amount <= 0:
            raise NotSentError("paper fill: the amount rounds to zero")
        now = self._clock.now()
        order_id = f"paper-{client_order_id}"
        return OrderView(
            order_id=order_id,
            status=Status.FILLED,
            exchange_status="filled",
            filled_amount=amount,
            filled_amount_quote=filled_quote,
            fee_paid=fee,
            fee_currency="EUR",
            fills=(Fill(f"{order_id}-1", amount, price, fee, "EUR", True, now),),
            raw={
                "paper": True,
                "orderId": order_id,
                "clientOrderId": client_order_id,
                "market": market,
                "side": side.value,
                "price": str(price),
                "filledAmount": str(amount),
                "filledAmountQuote": str(filled_quote),
                "feePaid": str(fee),
            },
        )

    def find(self, *, market: str, client_order_id: str, since_ms: int, max_weight: int | None) -> Lookup:
        """A paper order exists only as its execution: one not filled in-process never will be."""
        return Absent(self.exchange_now_ms())
