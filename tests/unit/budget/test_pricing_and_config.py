"""Model prices (decimal, rounded up, never float) and the budget service's configuration."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.budget.config import load_settings
from services.budget.pricing import ModelPrice, parse_price, parse_price_list
from shared.config import ConfigError


def test_cost_is_exact_and_rounded_up() -> None:
    price = ModelPrice(Decimal("0.15"), Decimal("0.60"))
    assert price.cost_micros(1000, 500) == 450
    assert price.cost_micros(1, 0) == 1  # 0.15 micros rounds up
    assert price.cost_micros(0, 0) == 0


def test_completion_tokens_within_a_budget() -> None:
    price = ModelPrice(Decimal("2.50"), Decimal("10.00"))
    assert price.completion_tokens_within(100, 1000) == 75  # (1000 - 250) / 10
    assert price.completion_tokens_within(1000, 1000) == -150  # the prompt alone costs 2500
    assert ModelPrice(Decimal(1), Decimal(0)).completion_tokens_within(10, 10) is None


def test_price_lists_parse_and_refuse_nonsense() -> None:
    assert parse_price_list("a=0.15:0.60, b-2=1:2") == {
        "a": ModelPrice(Decimal("0.15"), Decimal("0.60")),
        "b-2": ModelPrice(Decimal(1), Decimal(2)),
    }
    for bad in ("a", "a=1", "a=x:1", "a=1:2,a=1:2", "=1:2", "a=-1:2", "a=1e3:2"):
        with pytest.raises(ValueError):
            parse_price_list(bad)
    with pytest.raises(ValueError):
        parse_price("1")


def test_settings_defaults_and_overrides() -> None:
    settings = load_settings({"BUDGET_MODEL_PRICES": "m=1:2", "BUDGET_DEFAULT_DAILY_TOKENS": "500"})
    assert settings.price_table().price("m") == ModelPrice(Decimal(1), Decimal(2))
    assert settings.price_table().price("other") == parse_price(settings.default_model_price)
    assert settings.default_limits().daily_tokens == 500
    assert settings.reservation_ttl_seconds == 300


def test_no_test_switch_reaches_production_settings() -> None:
    """The old race-widening knob is not a setting any more: the storm uses the test-only entry
    point tests/support/budget_with_hooks.py, and production ignores the variable."""
    settings = load_settings({"BUDGET_TEST_RESERVE_DELAY_MS": "50"})
    assert [name for name in type(settings).model_fields if "test" in name] == []


def test_bad_settings_name_every_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {
                "BUDGET_DEFAULT_DAILY_CALLS": "5",
                "BUDGET_DEFAULT_HOURLY_CALLS": "6",
                "BUDGET_RESERVATION_TTL_SECONDS": "0",
                "BUDGET_DEFAULT_MODEL_PRICE": "cheap",
            }
        )
    named = {problem.split(":")[0] for problem in caught.value.problems}
    assert named == {"BUDGET_DEFAULT_HOURLY_CALLS", "BUDGET_RESERVATION_TTL_SECONDS", "BUDGET_DEFAULT_MODEL_PRICE"}
