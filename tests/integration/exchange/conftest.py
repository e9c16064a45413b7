"""A fresh simulator per test on a free port, its admin client, and clients pointed at it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from python_bitvavo_api.bitvavo import Bitvavo

from shared.exchange.sdk import ApiCredentials, ExchangeSettings
from sim.bitvavo import (
    DEFAULT_TRADE_KEY,
    DEFAULT_TRADE_SECRET,
    DEFAULT_VIEW_KEY,
    DEFAULT_VIEW_SECRET,
    BitvavoSimulator,
    SimulatorAdmin,
)
from tests.integration.exchange.all_markets import AllMarketsData
from tests.support.trade_client import FullTradeClient

TRADE = ApiCredentials(DEFAULT_TRADE_KEY, DEFAULT_TRADE_SECRET)
VIEW = ApiCredentials(DEFAULT_VIEW_KEY, DEFAULT_VIEW_SECRET)
OPERATOR_ID = 4242


@pytest.fixture
def sim() -> Iterator[BitvavoSimulator]:
    with BitvavoSimulator(seed=42) as simulator:
        yield simulator


@pytest.fixture
def admin(sim: BitvavoSimulator) -> Iterator[SimulatorAdmin]:
    client = SimulatorAdmin(sim.base_url)
    yield client
    client.close()


# A busy machine (a loaded CI runner, `make test-under-load`) can take seconds to answer a local
# request, so the clients of these tests are patient. A test about a client that gives up uses
# `impatient_settings` against a fault that holds the answer far longer than that client waits.
PATIENT_CONNECT_S = 10.0
PATIENT_READ_S = 60.0
IMPATIENT_READ_S = 1.0


@pytest.fixture
def settings(sim: BitvavoSimulator) -> ExchangeSettings:
    """Patient timeouts (see above); two attempts for reads."""
    return ExchangeSettings(
        rest_url=sim.base_url,
        connect_timeout_s=PATIENT_CONNECT_S,
        read_timeout_s=PATIENT_READ_S,
        read_attempts=2,
        read_backoff_s=0.01,
    )


@pytest.fixture
def impatient_settings(sim: BitvavoSimulator) -> ExchangeSettings:
    """A client that stops reading after 1 s: only for faults that hold the answer far longer."""
    return ExchangeSettings(
        rest_url=sim.base_url,
        connect_timeout_s=PATIENT_CONNECT_S,
        read_timeout_s=IMPATIENT_READ_S,
        read_attempts=2,
        read_backoff_s=0.01,
    )


@pytest.fixture
def impatient_client(impatient_settings: ExchangeSettings) -> FullTradeClient:
    return FullTradeClient(TRADE, operator_id=OPERATOR_ID, settings=impatient_settings)


@pytest.fixture
def trade_client(settings: ExchangeSettings) -> FullTradeClient:
    return FullTradeClient(TRADE, operator_id=OPERATOR_ID, settings=settings)


@pytest.fixture
def public(settings: ExchangeSettings) -> AllMarketsData:
    return AllMarketsData(settings)


def sdk(sim: BitvavoSimulator, credentials: ApiCredentials | None = None, **options: Any) -> Bitvavo:
    """The official SDK pointed at the simulator, as production would be at Bitvavo."""
    config: dict[str, Any] = {"restUrl": sim.base_url, "timeout": int(PATIENT_READ_S), **options}
    if credentials is not None:
        config.update(apikey=credentials.key, apisecret=credentials.secret)
    return Bitvavo(config)


def closed_port() -> int:
    """A port nothing listens on (bound and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
