"""The budget service's settings: variables with the ``BUDGET_`` prefix.

Beside the common service settings (BUDGET_LISTEN_ADDR, BUDGET_DATABASE_URL,
BUDGET_PRINCIPAL_TOKENS, ...) these say the default limits of a user without a row in
budget_limits, how long a reservation lives, how large one call may be and what models cost.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field, ValidationInfo, field_validator

from services.budget.pricing import PriceTable, parse_price, parse_price_list
from services.budget.windows import Limits
from shared.config import ServiceSettings, load

PREFIX = "BUDGET_"

# Published prices (USD per million tokens) of the models the scanner is expected to use.
DEFAULT_MODEL_PRICES = "gpt-4o-mini=0.15:0.60,gpt-4.1-mini=0.40:1.60,gpt-4.1=2.00:8.00,gpt-4o=2.50:10.00"


class BudgetSettings(ServiceSettings):
    """Settings of the budget service."""

    default_daily_calls: int = Field(default=200, ge=0, le=10_000_000)
    """LLM calls per UTC day for a user without limits of their own."""

    default_hourly_calls: int = Field(default=50, ge=0, le=10_000_000)
    """LLM calls per rolling 60 minutes for a user without limits of their own (<= daily)."""

    default_daily_tokens: int = Field(default=0, ge=0, le=10**12)
    """Tokens per UTC day for a user without limits of their own; 0 = no token limit."""

    default_daily_cost_micros: int = Field(default=0, ge=0, le=10**12)
    """Cost per UTC day in micros of USD for a user without limits of their own; 0 = no limit."""

    reservation_ttl_seconds: float = Field(default=300.0, gt=0, le=86400)
    """How long a reservation may stay neither committed nor released before it expires (an
    expired reservation keeps counting: its call may have happened)."""

    max_tokens_per_call: int = Field(default=4096, ge=1, le=10_000_000)
    """The most completion tokens one call is ever granted."""

    model_prices: str = DEFAULT_MODEL_PRICES
    """Prices as model=input:output, comma-separated, in USD per million tokens."""

    default_model_price: str = "10.00:30.00"
    """input:output price (USD per million tokens) of models not listed; deliberately high so an
    unknown model is over- rather than under-estimated."""

    sweep_interval_seconds: float = Field(default=15.0, gt=0, le=3600)
    """How often reservations past their TTL are marked expired."""

    @field_validator("model_prices")
    @classmethod
    def _prices_parse(cls, value: str) -> str:
        parse_price_list(value)
        return value

    @field_validator("default_model_price")
    @classmethod
    def _price_parses(cls, value: str) -> str:
        parse_price(value)
        return value

    @field_validator("default_hourly_calls")
    @classmethod
    def _hourly_within_daily(cls, value: int, info: ValidationInfo) -> int:
        # A field validator (not a model one) so the error names BUDGET_DEFAULT_HOURLY_CALLS.
        daily = info.data.get("default_daily_calls")
        if daily is not None and value > daily:
            raise ValueError("must not exceed BUDGET_DEFAULT_DAILY_CALLS")
        return value

    def price_table(self) -> PriceTable:
        """The model price table."""
        return PriceTable(parse_price_list(self.model_prices), parse_price(self.default_model_price))

    def default_limits(self) -> Limits:
        """The limits of a user who has none of their own."""
        return Limits(
            daily_calls=self.default_daily_calls,
            hourly_calls=self.default_hourly_calls,
            daily_tokens=self.default_daily_tokens,
            daily_cost_micros=self.default_daily_cost_micros,
        )


def load_settings(environ: Mapping[str, str]) -> BudgetSettings:
    """The settings from ``environ``; ConfigError names every bad BUDGET_ variable."""
    return load(BudgetSettings, environ, PREFIX)
