"""Fixtures of the scanner tests: fresh simulators per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.scanner.kit import Exchange, Llm, running_exchange, running_llm


@pytest.fixture
def exchange() -> Iterator[Exchange]:
    """A fresh exchange simulator (its request counts start at zero)."""
    with running_exchange() as ex:
        yield ex


@pytest.fixture
def llm() -> Iterator[Llm]:
    """A fresh LLM simulator."""
    with running_llm() as sim:
        yield sim
