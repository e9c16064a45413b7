"""Session fixtures: one throwaway, migrated PostgreSQL for the whole test session.

With DATABASE_URL set (a superuser URL of an external server), tests use that server instead of
starting an embedded one. Tests isolate themselves by user id (harness.new_user_id), not by
database; tests that stop the database get a cluster of their own (``private_postgres``). Every
test database gets a high account daily notional cap (harness.prepare_test_database).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from shared.db.embedded import EmbeddedCluster
from shared.db.migrate import migrate
from tests.harness import Postgres, prepare_test_database
from tests.support.database_clock import DatabaseClock, DbClock


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """The session's migrated database."""
    external = os.environ.get("DATABASE_URL")
    if external:
        migrate(external)
        prepare_test_database(external)
        yield Postgres(external, None)
        return
    cluster = EmbeddedCluster(tmp_path_factory.mktemp("pg") / "data")
    url = cluster.start()
    migrate(url)
    prepare_test_database(url)
    yield Postgres(url, cluster)
    cluster.stop()


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[Postgres]:
    """A migrated cluster of this test's own, for tests that stop and start the server."""
    cluster = EmbeddedCluster(tmp_path / "pgdata")
    url = cluster.start()
    migrate(url)
    prepare_test_database(url)
    yield Postgres(url, cluster)
    with contextlib.suppress(Exception):  # the test may have left the server stopped (or broken)
        cluster.stop()


@pytest.fixture(scope="session")
def metrics_port() -> int:
    """This test process's own /metrics (shared.metrics), for in-process services: the meter
    provider is process-wide, so counters add up over the session — tests read differences."""
    from shared.metrics import setup_metrics

    port = setup_metrics("tests", "127.0.0.1:0")
    assert port is not None
    return port


@pytest.fixture
def db_clock(postgres: Postgres) -> Iterator[DbClock]:
    """``db_clock(start)``: the session database's clock frozen at ``start`` (None: now), as a
    DatabaseClock the test moves; production's running clock is back after the test."""
    made: list[DatabaseClock] = []

    def freeze(start: datetime | None = None) -> DatabaseClock:
        clock = DatabaseClock(postgres.admin_url, start)
        made.append(clock)
        return clock

    try:
        yield freeze
    finally:
        if made:
            made[-1].release()
