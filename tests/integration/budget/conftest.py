"""Fixtures of the budget tests: an in-process budget server (the database clock frozen at servers.NOON)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import Postgres
from tests.integration.budget.servers import Budget, in_process_budget


@pytest.fixture
def budget(postgres: Postgres) -> Iterator[Budget]:
    """A budget server with default settings with the database clock frozen at servers.NOON."""
    with in_process_budget(postgres) as server:
        yield server
