"""How much each benchmark does: the full run and ``--quick``.

Every benchmark is bounded twice, by a number of tasks and by a deadline, so ``make bench``
stays under about three minutes on a 2-core machine and ``--quick`` under one.

Live executions are also bounded by the exchange's rate limit: Bitvavo gives one API key 1000
weight points per minute, and one live execution costs that key 6 (GET /balance 5, POST /order
1). A live round is therefore at most ``live_round`` executions, run after the simulator's
clock was moved to a fresh rate-limit minute; more samples take more rounds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """The parameters of one ``python -m bench`` run."""

    threads: int
    budget_users: int
    budget_tasks: int
    budget_deadline_seconds: float
    budget_one_caller: int
    executor_users: int
    executor_one_caller: int
    live_rounds: int
    live_round: int
    paper_rounds: int
    paper_round: int
    executor_deadline_seconds: float


FULL = Sizes(
    threads=16,
    budget_users=256,
    budget_tasks=2000,
    budget_deadline_seconds=25.0,
    budget_one_caller=200,
    executor_users=64,
    executor_one_caller=40,
    live_rounds=3,
    live_round=140,
    paper_rounds=2,
    paper_round=250,
    executor_deadline_seconds=25.0,
)

QUICK = Sizes(
    threads=16,
    budget_users=256,
    budget_tasks=500,
    budget_deadline_seconds=8.0,
    budget_one_caller=60,
    executor_users=32,
    executor_one_caller=15,
    live_rounds=1,
    live_round=80,
    paper_rounds=1,
    paper_round=80,
    executor_deadline_seconds=10.0,
)
