"""The order-size rule: how large an order in EUR may be, given a user's policy and the market.

One rule, two readers: the executor's ``order_size`` validator refuses an order outside it
(ORDER_TOO_SMALL / ORDER_TOO_LARGE), and the scanner sizes its ideas inside the same range so
the executor does not refuse them for their size.

An order's EUR amount must be above zero, within the policy's [min, max] and within the market's
[minimum order in EUR, maximum order in EUR]; its base amount (EUR / price) must reach the
market's minimum in the base asset. The policy is judged first: an order both below the policy's
minimum and above the market's maximum is too small.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

ORDER_TOO_SMALL = "ORDER_TOO_SMALL"
ORDER_TOO_LARGE = "ORDER_TOO_LARGE"


@dataclass(frozen=True)
class OrderSizeLimits:
    """The limits one order is held to; the market's are unknown (zero, None) until given."""

    policy_min_eur: Decimal
    policy_max_eur: Decimal
    market_min_eur: Decimal = Decimal(0)
    market_max_eur: Decimal | None = None
    market_min_base: Decimal = Decimal(0)

    def bounds(self) -> tuple[Decimal, Decimal] | None:
        """The EUR range an order may take — the policy's, narrowed to the market's — or None
        when no amount fits (the policy's maximum is below the market's minimum, or not above 0)."""
        lowest = max(self.policy_min_eur, self.market_min_eur)
        highest = self.policy_max_eur if self.market_max_eur is None else min(self.policy_max_eur, self.market_max_eur)
        if lowest > highest or highest <= 0:
            return None
        return lowest, highest

    def verdict(self, amount_eur: Decimal, *, base_amount: Decimal | None = None) -> str:
        """ "" when ``amount_eur`` (and ``base_amount``, when known) is allowed, else the reason."""
        if amount_eur <= 0 or amount_eur < self.policy_min_eur:
            return ORDER_TOO_SMALL
        if amount_eur > self.policy_max_eur:
            return ORDER_TOO_LARGE
        if amount_eur < self.market_min_eur or (base_amount is not None and base_amount < self.market_min_base):
            return ORDER_TOO_SMALL
        if self.market_max_eur is not None and amount_eur > self.market_max_eur:
            return ORDER_TOO_LARGE
        return ""
