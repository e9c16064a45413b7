"""The executor refuses a configuration whose mode does not match its keys, naming every variable."""

from __future__ import annotations

import pytest

from services.executor.config import Mode, load_settings
from shared.config import ConfigError

KEY = "k" * 64
SECRET = "s" * 128


def problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    return [p.split(":", 1)[0] for p in caught.value.problems]


def test_the_mode_is_required() -> None:
    assert problems({}) == ["EXECUTOR_MODE"]
    assert problems({"EXECUTOR_MODE": "demo"}) == ["EXECUTOR_MODE"]


def test_live_needs_key_secret_and_operator_id() -> None:
    assert problems({"EXECUTOR_MODE": "live"}) == [
        "EXECUTOR_BITVAVO_API_KEY",
        "EXECUTOR_BITVAVO_API_SECRET",
        "EXECUTOR_OPERATOR_ID",
    ]


def test_paper_holds_no_trade_key() -> None:
    assert problems({"EXECUTOR_MODE": "paper", "EXECUTOR_BITVAVO_API_KEY": KEY}) == ["EXECUTOR_BITVAVO_API_KEY"]


def test_every_bad_variable_is_named_at_once() -> None:
    env = {
        "EXECUTOR_MODE": "live",
        "EXECUTOR_BITVAVO_API_KEY": KEY,
        "EXECUTOR_BITVAVO_API_SECRET": SECRET,
        "EXECUTOR_OPERATOR_ID": "not-a-number",
        "EXECUTOR_REQUEST_TIMEOUT_SECONDS": "-1",
        "EXECUTOR_PAPER_BALANCE_EUR": "1.001",
    }
    assert sorted(problems(env)) == [
        "EXECUTOR_OPERATOR_ID",
        "EXECUTOR_PAPER_BALANCE_EUR",
        "EXECUTOR_REQUEST_TIMEOUT_SECONDS",
    ]


@pytest.mark.parametrize("value", ["1000", "25", ""])
def test_the_retired_account_cap_variable_is_refused_not_ignored(value: str) -> None:
    """The account cap lives in the database now: a stale variable must not look like it is in force."""
    env = {"EXECUTOR_MODE": "paper", "EXECUTOR_ACCOUNT_DAILY_NOTIONAL_CAP_EUR": value}
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    (problem,) = caught.value.problems
    assert problem.startswith("EXECUTOR_ACCOUNT_DAILY_NOTIONAL_CAP_EUR: ")
    assert "database" in problem and "UpdateAccountSettings" in problem
    assert "oraclectl account set --daily-notional-cap-eur" in problem
    assert load_settings({"EXECUTOR_MODE": "paper"}).mode is Mode.PAPER  # without it: fine


def test_secrets_are_not_repeated_in_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"EXECUTOR_MODE": "paper", "EXECUTOR_BITVAVO_API_SECRET": SECRET})
    assert SECRET not in str(caught.value)


def test_valid_live_and_paper() -> None:
    live = load_settings(
        {
            "EXECUTOR_MODE": "live",
            "EXECUTOR_BITVAVO_API_KEY": KEY,
            "EXECUTOR_BITVAVO_API_SECRET": SECRET,
            "EXECUTOR_OPERATOR_ID": "9223372036854775807",
        }
    )
    assert live.mode is Mode.LIVE and live.operator_id == 2**63 - 1
    assert SECRET not in repr(live)
    paper = load_settings({"EXECUTOR_MODE": "paper"})
    assert paper.mode is Mode.PAPER and paper.exchange_url == "https://api.bitvavo.com/v2"


LIVE = {
    "EXECUTOR_MODE": "live",
    "EXECUTOR_BITVAVO_API_KEY": KEY,
    "EXECUTOR_BITVAVO_API_SECRET": SECRET,
    "EXECUTOR_OPERATOR_ID": "1",
}


def test_the_default_exchange_is_production_bitvavo() -> None:
    assert load_settings(LIVE).exchange_url == "https://api.bitvavo.com/v2"


def test_no_test_switch_reaches_production_settings() -> None:
    """The old crash knob is not a setting any more: the crash tests use the test-only entry point
    tests/support/executor_with_hooks.py, and production ignores the variable."""
    settings = load_settings({**LIVE, "EXECUTOR_TEST_CRASH_AT": "before_send"})
    assert "test_crash_at" not in type(settings).model_fields


def test_live_refuses_insecure_dev_auth_even_on_loopback() -> None:
    """insecure-dev makes every caller, the scanner included, a principal allowed to override."""
    env = {
        "EXECUTOR_MODE": "live",
        "EXECUTOR_BITVAVO_API_KEY": KEY,
        "EXECUTOR_BITVAVO_API_SECRET": SECRET,
        "EXECUTOR_OPERATOR_ID": "1",
        "EXECUTOR_AUTH_MODE": "insecure-dev",
    }
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    (problem,) = caught.value.problems
    assert problem.startswith("EXECUTOR_AUTH_MODE: ")
    assert "live" in problem
    assert load_settings(env | {"EXECUTOR_AUTH_MODE": "token"}).auth_mode == "token"
    assert load_settings({"EXECUTOR_MODE": "paper", "EXECUTOR_AUTH_MODE": "insecure-dev"}).auth_mode == "insecure-dev"


def test_paper_refuses_insecure_dev_off_loopback() -> None:
    env = {"EXECUTOR_MODE": "paper", "EXECUTOR_AUTH_MODE": "insecure-dev", "EXECUTOR_LISTEN_ADDR": "0.0.0.0:50051"}
    assert problems(env) == ["EXECUTOR_AUTH_MODE"]


def test_paper_prices_are_reused_for_at_most_a_second() -> None:
    assert load_settings({"EXECUTOR_MODE": "paper"}).paper_price_max_age_seconds == 1.0
    assert (
        load_settings(
            {"EXECUTOR_MODE": "paper", "EXECUTOR_PAPER_PRICE_MAX_AGE_SECONDS": "0.25"}
        ).paper_price_max_age_seconds
        == 0.25
    )
    for bad in ("1.5", "-1", "soon"):
        assert problems({"EXECUTOR_MODE": "paper", "EXECUTOR_PAPER_PRICE_MAX_AGE_SECONDS": bad}) == [
            "EXECUTOR_PAPER_PRICE_MAX_AGE_SECONDS"
        ]
