"""Migrations apply on an empty database, again as a no-op, and concurrently without harm."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg

from shared.db.embedded import EmbeddedCluster
from shared.db.migrate import discover, migrate
from tests.harness import Postgres

CATALOG = """
SELECT 'table ' || c.relname || ' ' || string_agg(a.attname || ':' || format_type(a.atttypid, a.atttypmod), ',' ORDER BY a.attnum)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE n.nspname = 'oracle' GROUP BY c.relname
UNION ALL SELECT 'policy ' || tablename || ' ' || policyname || ' ' || coalesce(qual, '') FROM pg_policies WHERE schemaname = 'oracle'
UNION ALL SELECT 'function ' || p.proname || ' ' || p.prosecdef FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'oracle'
UNION ALL SELECT 'constraint ' || conrelid::regclass || ' ' || conname FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'oracle'
UNION ALL SELECT 'index ' || indexname FROM pg_indexes WHERE schemaname = 'oracle'
ORDER BY 1
"""


def catalog(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(CATALOG).fetchall()]


def applied(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT version FROM public.oracle_schema_migrations ORDER BY 1")]


def test_apply_on_empty_then_again_is_a_no_op(tmp_path: Path, postgres: Postgres) -> None:
    cluster = EmbeddedCluster(tmp_path / "pg")
    url = cluster.start()
    try:
        every = [m.version for m in discover()]
        assert migrate(url) == every
        first = catalog(url)
        assert any(line.startswith("table trade_executions") for line in first)
        assert migrate(url) == []
        assert catalog(url) == first
        assert applied(url) == every
        # The same schema as the session database, which was migrated the same way.
        assert first == catalog(postgres.admin_url)
    finally:
        cluster.stop()


def test_two_concurrent_migrators_end_in_the_same_schema(tmp_path: Path, postgres: Postgres) -> None:
    cluster = EmbeddedCluster(tmp_path / "pg")
    url = cluster.start()
    try:
        barrier = threading.Barrier(2)
        results: list[list[str]] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                barrier.wait()
                results.append(migrate(url))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        every = [m.version for m in discover()]
        # One migrator applied everything, the other found nothing left to do.
        assert sorted(results, key=len) == [[], every]
        assert applied(url) == every
        assert catalog(url) == catalog(postgres.admin_url)
    finally:
        cluster.stop()


def test_an_edited_migration_is_refused(tmp_path: Path) -> None:
    cluster = EmbeddedCluster(tmp_path / "pg")
    url = cluster.start()
    try:
        folder = tmp_path / "migrations"
        folder.mkdir()
        (folder / "0001_a.sql").write_text("CREATE TABLE public.edit_check (id int);")
        assert migrate(url, folder) == ["0001_a"]
        (folder / "0001_a.sql").write_text("CREATE TABLE public.edit_check (id bigint);")
        try:
            migrate(url, folder)
        except Exception as exc:
            assert "changed after it was applied" in str(exc)
        else:
            raise AssertionError("an edited migration was applied")
    finally:
        cluster.stop()
