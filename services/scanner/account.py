"""``ReadonlyAccount``: the scanner's view of the Bitvavo account, through a view-only key.

It reads balances, the account's orders and its trades, and nothing else: it has no way to place
or change an order. On construction it proves the key cannot trade (a cancel of a random order id
must be refused with 310) and refuses to exist otherwise, so a trade key put into the scanner's
environment by mistake stops the scanner at startup.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from shared.exchange.account import AccountReads
from shared.exchange.errors import TradeCapableKeyError
from shared.exchange.permissions import PROBE_MARKET, TradePermission, probe_trade_permission
from shared.exchange.sdk import ApiCredentials, BitvavoGateway, ExchangeSettings
from shared.exchange.wire import check_market

logger = logging.getLogger(__name__)

PROBE_OPERATOR_ID = 0


class ReadonlyAccount(AccountReads):
    """Balances, orders and trades of the account behind a view-only key (the reads are
    ``AccountReads``'; this class adds only the proof that the key cannot trade).

    Raises ``TradeCapableKeyError`` at construction when the key can trade, and whatever the probe
    raised (``AuthenticationError``, ``ExchangeUnavailableError``, …) when it cannot tell.
    """

    def __init__(
        self,
        credentials: ApiCredentials,
        settings: ExchangeSettings | None = None,
        *,
        probe_market: str = PROBE_MARKET,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(BitvavoGateway(settings or ExchangeSettings(), credentials, sleep=sleep))
        self._probe_market = check_market(probe_market)
        self.verify_cannot_trade()

    def verify_cannot_trade(self) -> None:
        """Prove the key lacks the trade permission; raise ``TradeCapableKeyError`` if it has it."""
        permission = probe_trade_permission(self._gateway, market=self._probe_market, operator_id=PROBE_OPERATOR_ID)
        if permission is not TradePermission.CANNOT_TRADE:
            logger.error("the scanner's Bitvavo key can trade; refusing to start")
            raise TradeCapableKeyError("this key can trade; the scanner only accepts a view-only key")
        logger.info("the scanner's Bitvavo key is view-only")
