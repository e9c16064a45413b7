"""Row ids of growing tables are time-ordered UUIDs (shared/ids.py): version 7, later ones sort
after earlier ones, so an index on them grows at its right edge."""

from __future__ import annotations

import uuid

from shared.ids import new_id


def test_ids_are_version_7_and_sort_in_the_order_they_were_made() -> None:
    ids = [new_id() for _ in range(2000)]
    assert all(uuid.UUID(i).version == 7 for i in ids)
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # as text, the way PostgreSQL's uuid type orders them too
    assert [uuid.UUID(i) for i in ids] == sorted(uuid.UUID(i) for i in ids)
