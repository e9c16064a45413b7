"""The stack gives each service only its own environment: the trade key to the executor alone,
the view-only key to the scanner, nothing of the supervisor's own environment, and the
operator's prefixed variables to their service only (how ``make run`` goes real)."""

from __future__ import annotations

import pytest

from stack import environments
from stack.credentials import Credentials
from stack.environments import KeySeparationError, Plan, Wiring

OPERATOR_SHELL = {
    "PATH": "/usr/bin",
    "HOME": "/root",
    "AWS_SECRET_ACCESS_KEY": "not-for-services",
    "DATABASE_URL": "postgresql://admin@db/oracle",
    "EXECUTOR_BITVAVO_API_KEY": "operator-trade-key",
    "SCANNER_LOG_LEVEL": "DEBUG",
}


def _wiring(credentials: Credentials) -> Wiring:
    return Wiring(
        credentials=credentials,
        database_urls={s: f"postgresql:///oracle?user=oracle_{s}" for s in ("scanner", "executor", "budget")},
        exchange_url="http://127.0.0.1:1/v2",
        llm_url="http://127.0.0.1:2/v1",
        llm_api_key="llm-key",
        llm_model="sim-model",
    )


def _all(shell: dict[str, str]) -> tuple[Credentials, dict[str, str], dict[str, str], dict[str, str]]:
    credentials = Credentials()
    wiring, plan = _wiring(credentials), Plan.of(shell)
    budget = environments.budget("127.0.0.1:0", wiring, shell)
    executor = environments.executor("127.0.0.1:0", wiring, shell, plan)
    scanner = environments.scanner("127.0.0.1:0", wiring, shell, plan, budget_addr="b:1", executor_addr="e:2")
    return credentials, budget, executor, scanner


def test_each_service_gets_only_its_own_variables() -> None:
    credentials, budget, executor, scanner = _all(
        {k: v for k, v in OPERATOR_SHELL.items() if k != "EXECUTOR_BITVAVO_API_KEY"}
    )
    for env, prefix in ((budget, "BUDGET_"), (executor, "EXECUTOR_"), (scanner, "SCANNER_")):
        foreign = [
            k for k in env if not k.startswith(prefix) and k not in (*environments.PASSED_THROUGH, "PYTHONUNBUFFERED")
        ]
        assert foreign == [], foreign
        assert "AWS_SECRET_ACCESS_KEY" not in env and "DATABASE_URL" not in env
    trade = credentials.trade_key
    assert executor["EXECUTOR_BITVAVO_API_KEY"] == trade.key and executor["EXECUTOR_MODE"] == "live"
    assert scanner["SCANNER_BITVAVO_API_KEY"] == credentials.view_key.key
    for env in (budget, scanner):
        assert not any(trade.key in v or trade.secret in v for v in env.values())
    assert scanner["SCANNER_BUDGET_TOKEN"] == credentials.scanner_token
    assert scanner["SCANNER_EXECUTOR_TOKEN"] == credentials.scanner_token
    assert scanner["SCANNER_LOG_LEVEL"] == "DEBUG"  # the operator's own SCANNER_ variable
    assert scanner["SCANNER_PRINCIPAL_TOKENS"] == f"operator:{credentials.operator_token}"


def test_an_executor_variable_in_the_shell_never_reaches_the_scanner() -> None:
    _, _, executor, scanner = _all(OPERATOR_SHELL)
    assert executor["EXECUTOR_BITVAVO_API_KEY"] == "operator-trade-key"
    assert not any(k.startswith("EXECUTOR_") for k in scanner)


def test_a_leaked_trade_key_stops_the_scanner_from_starting() -> None:
    credentials = Credentials()
    with pytest.raises(KeySeparationError):
        environments.check_scanner_separation({"SCANNER_X": credentials.trade_key.secret}, credentials)
    with pytest.raises(KeySeparationError):
        environments.check_scanner_separation({"SCANNER_TRADE_API_KEY": "x"}, credentials)


def test_a_real_exchange_gets_no_simulator_keys_and_paper_mode() -> None:
    shell = {"PATH": "/usr/bin", "EXECUTOR_EXCHANGE_URL": "https://api.bitvavo.com/v2"}
    _, _, executor, scanner = _all(shell)
    assert executor["EXECUTOR_MODE"] == "paper"
    assert executor["EXECUTOR_EXCHANGE_URL"] == "https://api.bitvavo.com/v2"
    assert "EXECUTOR_BITVAVO_API_KEY" not in executor
    assert scanner["SCANNER_EXCHANGE_URL"] == "http://127.0.0.1:1/v2"  # the scanner still reads the simulator
    assert Plan.of(shell).needs_exchange_simulator and Plan.of(shell).needs_llm_simulator
    real_llm = {"SCANNER_LLM_BASE_URL": "https://api.openai.com/v1"}
    assert not Plan.of(real_llm).needs_llm_simulator
