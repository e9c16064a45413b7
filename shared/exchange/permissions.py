"""Finding out, without risk, whether an API key can trade.

The probe cancels an order that cannot exist (a fresh random UUID): ``DELETE /order`` needs the
trade permission, so a view-only key is refused with 310, while a trading key gets past the
permission check and is told 240 (no such order). Nothing is ever placed or changed.
"""

from __future__ import annotations

import enum
import logging
import uuid

from shared.exchange.errors import PermissionDeniedError, RequestRejectedError
from shared.exchange.sdk import BitvavoGateway
from shared.exchange.wire import check_market

logger = logging.getLogger(__name__)

NO_TRADE_PERMISSION = 310
PROBE_MARKET = "BTC-EUR"
"""The market a keyed client probes in unless told otherwise (any listed market will do)."""


class TradePermission(enum.Enum):
    CAN_TRADE = "can_trade"
    CANNOT_TRADE = "cannot_trade"


def probe_trade_permission(gateway: BitvavoGateway, *, market: str, operator_id: int) -> TradePermission:
    """310 → CANNOT_TRADE; 240, any other refusal past the permission check, or success → CAN_TRADE.

    Transport, authentication and rate-limit failures propagate: the answer is then unknown.
    """
    check_market(market)
    order_id = str(uuid.uuid4())
    try:
        gateway.read(
            "probe trade permission",
            lambda sdk: sdk.cancelOrder(market, order_id, operator_id),
        )
    except PermissionDeniedError as exc:
        if exc.code == NO_TRADE_PERMISSION:
            return TradePermission.CANNOT_TRADE
        raise
    except RequestRejectedError as exc:
        logger.info("trade-permission probe answered %s: the key can trade", exc.code)
        return TradePermission.CAN_TRADE
    logger.warning("trade-permission probe cancelled a random order id %s?", order_id)
    return TradePermission.CAN_TRADE
