"""The PostgreSQL pool and the one way to run a transaction as a user.

Every query on user data runs inside :meth:`Database.transaction` with the user set
transaction-locally (``set_config('app.user_id', …, true)``), which is what row-level security
keys on: a pooled connection reused for another user never carries the previous one's setting.
``BEGIN`` and that setting are one round trip (one simple query; the user id is quoted by
psycopg's ``sql.Literal``), then COMMIT, or ROLLBACK on any exception — the pool's connections are
in autocommit mode so that psycopg sends no BEGIN of its own; a ``conn.transaction()`` inside is
a savepoint. Connection failures become :class:`shared.errors.Unavailable`; serialization failures and
deadlocks become :class:`shared.errors.Aborted`.

A connection is probed at checkout only when it has been idle (:class:`IdleCheck`): one that
finished a transaction moments ago was working then, and probing it again would add a round trip
to every transaction. A connection that died while idle (the database restarted) is still caught
by the probe and replaced; one that died in the few seconds since its last use fails that one
transaction (``Unavailable``) and is replaced as it goes back to the pool, so a service recovers
by itself either way.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool
from psycopg import sql
from psycopg.rows import dict_row

from shared.errors import Aborted, Unavailable

log = logging.getLogger(__name__)

Conn = psycopg.Connection[dict[str, Any]]

# The pseudo-user whose rows hold service-wide audit events (e.g. refused principals).
SYSTEM_USER = "_system"


# A connection back from a transaction less than this long ago is handed out unprobed.
IDLE_CHECK_AFTER_SECONDS = 5.0


_BEGIN = sql.SQL("BEGIN")
_COMMIT = sql.SQL("COMMIT")


def _rollback(conn: Conn) -> None:
    """End a failed transaction; a connection that broke meanwhile is left to the pool to discard."""
    try:
        conn.execute("ROLLBACK")
    except psycopg.Error:
        log.debug("rollback failed; the connection is discarded", exc_info=True)


class WrongDatabaseRole(psycopg.OperationalError):
    """The URL logs in as another role than the service's own (the pool keeps refusing it)."""


class IdleCheck:
    """The pool's checkout check: probes a connection (``probe``, an empty query by default) only
    when it has not been used for more than ``idle_after`` seconds of ``clock`` (monotonic).

    :meth:`used` records when a connection was last known to work (configured, or back from a
    transaction); a connection never recorded is always probed. Safe to share between threads."""

    def __init__(
        self,
        idle_after: float = IDLE_CHECK_AFTER_SECONDS,
        *,
        probe: Callable[[Conn], None] = psycopg_pool.ConnectionPool.check_connection,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._idle_after = idle_after
        self._probe = probe
        self._clock = clock
        self._lock = threading.Lock()
        # Keyed weakly: a connection the pool closes and drops is forgotten with it.
        self._last_used: weakref.WeakKeyDictionary[Conn, float] = weakref.WeakKeyDictionary()

    def used(self, conn: Conn) -> None:
        """``conn`` worked just now."""
        now = self._clock()
        with self._lock:
            self._last_used[conn] = now

    def __call__(self, conn: Conn) -> None:
        """Raise (the pool then discards ``conn`` and takes another) when an idle ``conn`` fails
        its probe."""
        with self._lock:
            last = self._last_used.get(conn)
        if last is None or self._clock() - last > self._idle_after:
            self._probe(conn)


class Database:
    """A pool of connections for one service role."""

    def __init__(
        self,
        url: str,
        *,
        name: str,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 5.0,
        statement_timeout_ms: int = 15000,
        expected_role: str | None = None,
        idle_check: IdleCheck | None = None,
    ) -> None:
        self._statement_timeout_ms = statement_timeout_ms
        self._expected_role = expected_role
        self._idle = idle_check or IdleCheck()
        self._pool: psycopg_pool.ConnectionPool[Conn] = psycopg_pool.ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=False,
            name=name,
            kwargs={"application_name": name, "connect_timeout": 3, "row_factory": dict_row},
            configure=self._configure,
            check=self._idle,
            reconnect_timeout=0,  # keep trying to reconnect for ever: the database may come back
        )

    def _configure(self, conn: Conn) -> None:
        if self._expected_role is not None:
            self._check_role(conn, self._expected_role)
        conn.execute(f"SET statement_timeout = {int(self._statement_timeout_ms)}")
        # The locks-then-count pattern (budget reservations, claims) needs each statement to see
        # what committed before it: READ COMMITTED, whatever the server's default.
        conn.execute("SET default_transaction_isolation = 'read committed'")
        conn.execute("SET search_path = oracle, pg_catalog")
        conn.commit()
        # Transactions are begun and ended by :meth:`transaction` itself, so that BEGIN and the
        # user's setting travel in one round trip (psycopg would send its own BEGIN alone).
        conn.autocommit = True
        self._idle.used(conn)

    @staticmethod
    def _check_role(conn: Conn, expected: str) -> None:
        """Refuse a connection that is not the service's own least-privilege role: a superuser
        or BYPASSRLS role would silently see every user's rows."""
        row = conn.execute(
            "SELECT current_user AS name, rolsuper OR rolbypassrls AS bypasses"
            " FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        if row is None or row["name"] != expected or row["bypasses"]:
            conn.close()
            log.critical(
                "refusing a database connection as %s: this service must connect as %s, "
                "which row-level security applies to",
                row["name"] if row else "?",
                expected,
            )
            raise WrongDatabaseRole(f"connected as {row['name'] if row else '?'}, expected {expected}")

    def open(self) -> None:
        """Open the pool without waiting: a service starts even while the database is down."""
        self._pool.open(wait=False)

    def close(self) -> None:
        """Close every connection."""
        self._pool.close()

    @contextmanager
    def transaction(self, user_id: str | None) -> Iterator[Conn]:
        """One transaction; ``user_id`` is set for row-level security (None: no user, zero rows).

        Commits when the block ends normally, rolls back on any exception.
        """
        begin = (
            _BEGIN
            if user_id is None
            else sql.SQL("BEGIN; SELECT set_config('app.user_id', {}, true)").format(sql.Literal(user_id))
        )
        try:
            with self._connection() as conn:
                conn.execute(begin)  # one round trip (no parameters: one simple query)
                try:
                    yield conn
                except BaseException:
                    _rollback(conn)
                    raise
                conn.execute(_COMMIT)
        except psycopg.errors.TransactionRollback as exc:
            raise Aborted("concurrent transaction conflict; retry", reason="TRANSACTION_CONFLICT") from exc
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed) as exc:
            log.warning("database unavailable: %s", type(exc).__name__)
            raise Unavailable("database unavailable", reason="DATABASE_UNAVAILABLE") from exc

    @contextmanager
    def _connection(self, timeout: float | None = None) -> Iterator[Conn]:
        """A pooled connection, recorded as used when it goes back (see :class:`IdleCheck`)."""
        with self._pool.connection(timeout=timeout) as conn:
            try:
                yield conn
            finally:
                # A connection that broke is discarded by the pool whatever is recorded here.
                self._idle.used(conn)

    def ping(self) -> bool:
        """True when a trivial query succeeds now."""
        try:
            with self._connection(timeout=2.0) as conn:
                conn.execute("SELECT 1")
            return True
        except Exception:
            return False
