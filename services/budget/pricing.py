"""What an LLM call costs: the model price table and the one cost formula.

Prices are decimal USD per million tokens, as the providers publish them; a cost is an integer
in micros of USD. One token at P USD per million tokens costs exactly P micros, so the formula
is ``prompt × input price + completion × output price``, rounded up (a reservation never
under-estimates). No float touches a price.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation

# A price: up to 6 digits, optionally 6 decimals (USD per million tokens).
_PRICE = re.compile(r"^\d{1,6}(\.\d{1,6})?$")
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$")


@dataclass(frozen=True)
class ModelPrice:
    """USD per million input (prompt) and output (completion) tokens."""

    input_usd_per_million: Decimal
    output_usd_per_million: Decimal

    def cost_micros(self, prompt_tokens: int, completion_tokens: int) -> int:
        """The cost of a call in micros of USD, rounded up."""
        exact = prompt_tokens * self.input_usd_per_million + completion_tokens * self.output_usd_per_million
        return int(exact.to_integral_value(rounding=ROUND_CEILING))

    def completion_tokens_within(self, prompt_tokens: int, budget_micros: int) -> int | None:
        """The most completion tokens a call with ``prompt_tokens`` may use so that its cost stays
        within ``budget_micros``; None when the cost does not depend on completion tokens and
        the prompt alone fits. Negative when even the prompt does not fit."""
        left = Decimal(budget_micros) - prompt_tokens * self.input_usd_per_million
        if self.output_usd_per_million == 0:
            return None if left >= 0 else -1
        return int((left / self.output_usd_per_million).to_integral_value(rounding=ROUND_FLOOR))


@dataclass(frozen=True)
class PriceTable:
    """Prices per model name, with a fallback for models not listed."""

    prices: Mapping[str, ModelPrice]
    default: ModelPrice

    def price(self, model: str) -> ModelPrice:
        """The price of ``model`` (the default price when it is not listed)."""
        return self.prices.get(model, self.default)

    def listed(self, model: str) -> str:
        """``model`` when the table lists it, else ``other``: a bounded metric label."""
        return model if model in self.prices else "other"


def parse_price(text: str) -> ModelPrice:
    """``"input:output"`` in USD per million tokens, e.g. ``"0.15:0.60"``."""
    inp, sep, out = text.strip().partition(":")
    if not sep or not _PRICE.fullmatch(inp.strip()) or not _PRICE.fullmatch(out.strip()):
        raise ValueError("a price must be input:output in USD per million tokens, e.g. 0.15:0.60")
    try:
        return ModelPrice(Decimal(inp.strip()), Decimal(out.strip()))
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise ValueError("a price must be decimal numbers") from None


def parse_price_list(text: str) -> dict[str, ModelPrice]:
    """``"model=input:output,model=input:output"`` → {model: price}."""
    out: dict[str, ModelPrice] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        model, sep, price = part.partition("=")
        model = model.strip()
        if not sep or not _MODEL.fullmatch(model):
            raise ValueError(f"entry {part!r} must be model=input:output")
        if model in out:
            raise ValueError(f"model {model!r} is listed twice")
        out[model] = parse_price(price)
    return out
