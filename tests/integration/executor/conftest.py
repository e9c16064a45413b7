"""Fixtures of the executor tests: a fresh exchange simulator per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.executor.kit import Exchange, running_exchange


@pytest.fixture
def exchange() -> Iterator[Exchange]:
    """A fresh simulator with plenty of EUR on the account (closed orders not found by
    clientOrderId: the conservative reading of the live API)."""
    with running_exchange() as ex:
        yield ex


@pytest.fixture(params=[False, True], ids=["closed-by-cid-off", "closed-by-cid-on"])
def either_exchange(request: pytest.FixtureRequest) -> Iterator[Exchange]:
    """The simulator both ways: with and without closed orders found by clientOrderId."""
    with running_exchange(closed_orders_by_client_order_id=request.param) as ex:
        yield ex
