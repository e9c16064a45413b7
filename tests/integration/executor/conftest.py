"""Fixtures of the executor tests: a fresh exchange simulator per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.executor.kit import Exchange, running_exchange


@pytest.fixture
def exchange() -> Iterator[Exchange]:
    """A fresh simulator with plenty of EUR on the account."""
    with running_exchange() as ex:
        yield ex
