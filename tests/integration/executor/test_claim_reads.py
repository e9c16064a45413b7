"""Facts are read once on the claim path: one ExecuteProposal reads the user's policy once under
the lock, and the global kill switch once with the account row lock — the claim is written as
SUBMITTING under those same locks, so no second read of either is needed. The reads are counted
at the repository functions that issue them, around a real execution."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from oracle.executor.v1 import executor_service_pb2 as pb

from services.executor import repository
from tests.harness import Postgres
from tests.integration.executor.kit import Exchange, in_process_executor, seed_proposal, user

COUNTED = ("policy", "account_settings", "lock_account_for_claim")


def test_one_execution_reads_each_fact_once(
    postgres: Postgres, exchange: Exchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    uid = user()
    reads: Counter[tuple[str, str]] = Counter()
    counting = False

    def counted(name: str, read: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(conn: Any, *args: Any, **kwargs: Any) -> Any:
            user_id = conn.execute("SELECT oracle.app_user() AS u").fetchone()["u"]
            if counting and user_id == uid:
                reads[(name, user_id)] += 1
            return read(conn, *args, **kwargs)

        return wrapper

    for name in COUNTED:
        monkeypatch.setattr(repository, name, counted(name, getattr(repository, name)))
    with in_process_executor(postgres, exchange.url) as ex:
        ex.set_policy(uid)
        pid = seed_proposal(postgres, uid, price=exchange.price("BTC-EUR"))
        counting = True
        execution = ex.execute(uid, pid)
        counting = False
    assert execution.status == pb.EXECUTION_STATUS_FILLED
    assert uuid.UUID(execution.execution_id).version == 7  # time-ordered row ids (shared/ids.py)
    assert reads == {
        ("policy", uid): 1,  # the claim's one read (the user's switch among it)
        ("lock_account_for_claim", uid): 1,  # the claim's one read of the global switch and the cap
    }
