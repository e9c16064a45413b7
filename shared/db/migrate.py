"""Versioned SQL migrations: ``python -m shared.db.migrate`` (``make migrate``).

Files ``shared/db/migrations/NNNN_name.sql`` apply in name order, each in its own transaction,
recorded in ``public.oracle_schema_migrations`` with a checksum. Applying twice is a no-op; an
applied file that was edited afterwards is refused (write a new migration instead). Concurrent
migrators serialise on a session advisory lock, so two at once end in the same schema.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg

from shared.db.locks import LockSpace

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


@dataclass(frozen=True)
class Migration:
    """One SQL file."""

    version: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


class MigrationError(Exception):
    """A migration cannot be applied safely."""


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration file, in order."""
    return [Migration(p.stem, p) for p in sorted(directory.glob("[0-9][0-9][0-9][0-9]_*.sql"))]


def migrate(admin_url: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply what is missing; returns the versions applied by this call."""
    applied_now: list[str] = []
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s, 0)", (int(LockSpace.MIGRATIONS),))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS public.oracle_schema_migrations ("
                " version text PRIMARY KEY, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done: dict[str, str] = dict(
                conn.execute("SELECT version, checksum FROM public.oracle_schema_migrations").fetchall()
            )
            for migration in discover(directory):
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version} was changed after it was applied; "
                            "add a new migration instead"
                        )
                    continue
                with conn.transaction():
                    conn.execute(migration.sql)  # type: ignore[call-overload]
                    conn.execute(
                        "INSERT INTO public.oracle_schema_migrations (version, checksum) VALUES (%s, %s)",
                        (migration.version, migration.checksum),
                    )
                log.info("applied migration %s", migration.version)
                applied_now.append(migration.version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s, 0)", (int(LockSpace.MIGRATIONS),))
    return applied_now


def main() -> int:
    """Apply migrations to DATABASE_URL, or to the embedded database when it is unset."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    url = os.environ.get("DATABASE_URL")
    if not url:
        from shared.db.embedded import EmbeddedCluster

        url = EmbeddedCluster().start()
    try:
        applied = migrate(url)
    except MigrationError as exc:
        log.error("%s", exc)
        return 1
    log.info("migrations: %d applied, schema up to date", len(applied))
    return 0


if __name__ == "__main__":
    sys.exit(main())
