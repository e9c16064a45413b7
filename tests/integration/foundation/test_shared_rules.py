"""Rules both Python and the database enforce, compared against the real database: the
confidence levels (shared.fields.CONFIDENCE_VALUES and the domain oracle.confidence)."""

from __future__ import annotations

from shared.fields import CONFIDENCE_VALUES
from tests.harness import Postgres


def test_the_confidence_domain_allows_exactly_the_python_levels(postgres: Postgres) -> None:
    with postgres.admin() as conn:
        row = conn.execute(
            "SELECT array_agg(v ORDER BY v) FROM generate_series(-1000, 1000) v"
            " WHERE pg_input_is_valid(v::text, 'oracle.confidence')"
        ).fetchone()
    assert row is not None
    assert tuple(row[0]) == CONFIDENCE_VALUES
