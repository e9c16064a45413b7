"""The scanner's configuration: trade keys are refused by name, cross-field rules hold."""

from __future__ import annotations

import pytest

from services.scanner.config import AnalystChoice, load_settings, trade_key_variables
from shared.config import ConfigError

BASE = {"SCANNER_PRINCIPAL_TOKENS": "operator:0123456789abcdef0123"}


@pytest.mark.parametrize(
    "name",
    [
        "EXECUTOR_BITVAVO_API_KEY",
        "EXECUTOR_BITVAVO_API_SECRET",
        "SCANNER_TRADE_KEY",
        "MY_TRADE_SECRET",
        "trade_api_key",
    ],
)
def test_a_trade_key_variable_is_refused_by_name_even_when_empty(name: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({**BASE, name: ""})
    assert any(p.startswith(f"{name}:") for p in refused.value.problems)


def test_trade_key_secret_values_are_never_repeated() -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({**BASE, "EXECUTOR_BITVAVO_API_SECRET": "s3cr3t-value-123"})
    assert "s3cr3t-value-123" not in str(refused.value)


@pytest.mark.parametrize("name", ["SCANNER_BITVAVO_API_KEY", "SCANNER_EXECUTOR_TOKEN", "TRADES_LOG", "KEYBOARD"])
def test_ordinary_variables_are_not_trade_keys(name: str) -> None:
    assert trade_key_variables({name: "x"}) == []


def test_defaults() -> None:
    settings = load_settings(BASE)
    assert settings.exchange_url == "https://api.bitvavo.com/v2"
    assert settings.lease_seconds == 120
    assert settings.proposal_ttl_seconds == 900
    assert settings.default_analyst is AnalystChoice.RULES
    assert settings.scheduler_enabled
    assert settings.instance_id


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SCANNER_BITVAVO_API_KEY": "k" * 64}, "SCANNER_BITVAVO_API_SECRET"),
        (
            {"SCANNER_LEASE_SECONDS": "10", "SCANNER_HEARTBEAT_INTERVAL_SECONDS": "10"},
            "SCANNER_HEARTBEAT_INTERVAL_SECONDS",
        ),
        ({"SCANNER_DEFAULT_ANALYST": "llm"}, "SCANNER_LLM_BASE_URL"),
        ({"SCANNER_DEFAULT_ANALYST": "llm", "SCANNER_LLM_BASE_URL": "http://x/v1"}, "SCANNER_BUDGET_ADDR"),
        ({"SCANNER_DEFAULT_ANALYST": "gpt"}, "SCANNER_DEFAULT_ANALYST"),
        ({"SCANNER_LEASE_SECONDS": "0"}, "SCANNER_LEASE_SECONDS"),
        ({"SCANNER_BACKOFF_BASE_SECONDS": "60", "SCANNER_BACKOFF_MAX_SECONDS": "10"}, "SCANNER_BACKOFF_MAX_SECONDS"),
    ],
)
def test_bad_settings_are_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({**BASE, **env})
    assert any(named in p.split(":")[0] for p in refused.value.problems), refused.value.problems
