"""Fixtures for the foundation's process-level tests: an exchange simulator and the environment
each service needs to start as its own process."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from sim.bitvavo import DEFAULT_VIEW_KEY, DEFAULT_VIEW_SECRET, BitvavoSimulator
from tests.harness import PRINCIPAL_TOKENS, SCANNER_TOKEN, Postgres

# A service's environment, given the database and the exchange simulator's base URL.
ServiceEnv = Callable[[str, Postgres], dict[str, str]]


@pytest.fixture(scope="module")
def exchange_url() -> Iterator[str]:
    sim = BitvavoSimulator(seed=7)
    url = sim.start()
    yield url
    sim.stop()


def service_env(service: str, postgres: Postgres, exchange_url: str) -> dict[str, str]:
    """The smallest honest environment each service starts with (paper executor, view-only scanner)."""
    prefix = service.upper() + "_"
    env = {
        prefix + "LISTEN_ADDR": "127.0.0.1:0",
        prefix + "DATABASE_URL": postgres.url(service),
        prefix + "PRINCIPAL_TOKENS": PRINCIPAL_TOKENS,
        prefix + "DB_HEALTH_INTERVAL_SECONDS": "0.2",
        prefix + "DB_POOL_TIMEOUT_SECONDS": "1",
        prefix + "GRACE_SECONDS": "2",
    }
    if service == "executor":
        env |= {"EXECUTOR_MODE": "paper", "EXECUTOR_EXCHANGE_URL": exchange_url}
    if service == "scanner":
        env |= {
            "SCANNER_EXCHANGE_URL": exchange_url,
            "SCANNER_BITVAVO_API_KEY": DEFAULT_VIEW_KEY,
            "SCANNER_BITVAVO_API_SECRET": DEFAULT_VIEW_SECRET,
            "SCANNER_BUDGET_ADDR": "127.0.0.1:1",
            "SCANNER_BUDGET_TOKEN": SCANNER_TOKEN,
            "SCANNER_EXECUTOR_ADDR": "127.0.0.1:1",
            "SCANNER_EXECUTOR_TOKEN": SCANNER_TOKEN,
            "SCANNER_SCHEDULER_ENABLED": "false",
        }
    return env
