"""The pool probes a connection at checkout only when it has been idle: a connection back from a
transaction moments ago is handed out as it is, one idle longer than the threshold is probed — and
a probe that fails hands out a fresh connection instead, so a service recovers by itself.

Real pool, real PostgreSQL. The probe is the pool's own check wrapped to count its calls; time is
a manual monotonic clock, so "idle" is decided without sleeping.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg_pool
import pytest

from shared.db import Database
from shared.db.pool import Conn, IdleCheck
from shared.errors import Unavailable
from tests.harness import Postgres

IDLE_AFTER = 5.0


class Probes:
    """The pool's real check, counted."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, conn: Conn) -> None:
        self.calls += 1
        psycopg_pool.ConnectionPool.check_connection(conn)


class Monotonic:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def one_connection_pool(postgres: Postgres) -> Iterator[tuple[Database, Probes, Monotonic]]:
    probes, clock = Probes(), Monotonic()
    db = Database(
        postgres.url("executor"),
        name="idle-check-test",
        min_size=1,
        max_size=1,
        idle_check=IdleCheck(IDLE_AFTER, probe=probes, clock=clock),
    )
    db.open()
    try:
        yield db, probes, clock
    finally:
        db.close()


def backend_pid(db: Database) -> int:
    with db.transaction(None) as conn:
        row = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()
    assert row is not None
    return int(row["pid"])


def terminate(postgres: Postgres, pid: int) -> None:
    with postgres.admin() as admin:
        row = admin.execute("SELECT pg_terminate_backend(%s) AS done", (pid,)).fetchone()
    assert row is not None and row[0] is True


def test_a_recently_used_connection_is_not_probed_an_idle_one_is(postgres: Postgres) -> None:
    with one_connection_pool(postgres) as (db, probes, clock):
        pid = backend_pid(db)  # a connection just configured is known to work
        for _ in range(20):
            clock.now += IDLE_AFTER / 2  # never idle for longer than the threshold
            assert backend_pid(db) == pid
        assert probes.calls == 0

        clock.now += IDLE_AFTER + 0.001
        assert backend_pid(db) == pid
        assert probes.calls == 1  # idle: probed once, and in use again it is not probed again
        assert backend_pid(db) == pid
        assert probes.calls == 1


def test_an_idle_connection_that_died_is_replaced_before_it_is_handed_out(postgres: Postgres) -> None:
    with one_connection_pool(postgres) as (db, probes, clock):
        pid = backend_pid(db)
        terminate(postgres, pid)  # e.g. the database restarted while the service was idle
        clock.now += IDLE_AFTER + 0.001
        assert backend_pid(db) != pid  # the transaction ran on a fresh connection: no failure
        assert probes.calls == 1


def test_a_connection_that_died_right_after_use_fails_one_transaction_and_is_replaced(postgres: Postgres) -> None:
    """The price of not probing: at most one failed transaction per pooled connection, UNAVAILABLE
    (which callers retry), and the pool replaces it by itself."""
    with one_connection_pool(postgres) as (db, probes, _clock):
        pid = backend_pid(db)
        terminate(postgres, pid)
        with pytest.raises(Unavailable):
            backend_pid(db)
        assert backend_pid(db) != pid
        assert probes.calls == 0
