"""How much each benchmark does: the full run (``make bench``), ``--quick`` (or ``BENCH_QUICK=1``)
and ``--smoke`` (the smallest run, used by the test that checks the benchmark's correctness
columns).

Every measurement is bounded twice, by a number of tasks and by a deadline, so ``make bench``
stays within 15 minutes on an idle 2-core machine (seeding 1 000 000 past executions included),
``--quick`` within about 3, ``--smoke`` within about 2.

The loaded scenarios whose figures the targets read (``many-users`` of the budget and of both
executor modes) and their floors run in ``rounds`` short paired rounds, service and floor
alternating (service, floor, service, floor, ...): the figures are the medians over the rounds,
so one slow moment of a shared machine moves one round, not the figure (bench/README.md,
"Rounds and medians").

What the rounds cost in ``make bench``: at each history size each side runs ``rounds`` x
(``budget_round`` + ``live_round`` + ``paper_round``) tasks, 5 x (600 + 140 + 140), plus one
start of the floor's processes (about 0.5 s) per floor round. At the throughputs of the run
before rounds (BENCHMARKS.md of 2026-11-30: budget ~300/s, its floor ~700/s; live 52-62/s, its
floor 93-141/s; paper 69-119/s, its floor 119-180/s) that is 47-57 s of measurement per size
against 20-24 s with one measurement each: about 90 s more over the three sizes, 7.4 -> ~9 min.

Live executions are also bounded by the exchange's rate limit: Bitvavo gives one API key 1000
weight points per minute (and an IP as many), and one live execution costs 2 in steady state
(POST /order 1 on the key, GET /ticker/price 1 on the IP; GET /balance, 5, once per
EXECUTOR_BALANCE_CACHE_SECONDS). A live round is at most ``live_round`` executions, run after the
simulator's weight counters went back to zero; more samples take more rounds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """The parameters of one ``python -m bench`` run."""

    threads: int
    history: tuple[int, ...]
    """Past executions in the database for each measurement (``bench.history``), ascending."""
    budget_users: int
    budget_tasks: int
    """Tasks of the ``hot-user`` scenario (one run)."""
    budget_round: int
    """Tasks of one ``many-users`` round (and of its floor's round)."""
    budget_deadline_seconds: float
    budget_one_caller: int
    executor_users: int
    executor_one_caller: int
    rounds: int
    """Paired rounds (service, then its floor) of every loaded scenario a target reads."""
    live_round: int
    paper_round: int
    executor_deadline_seconds: float
    scan_jobs: int
    scan_instances: tuple[int, ...]
    scan_deadline_seconds: float
    storm_runs: int
    storm_rounds: int
    storm_jobs: int
    storm_instances: int
    storm_users: int
    storm_requests: int
    storm_limit: int


FULL = Sizes(
    threads=16,
    history=(0, 100_000, 1_000_000),
    budget_users=256,
    budget_tasks=1500,
    budget_round=600,
    budget_deadline_seconds=20.0,
    budget_one_caller=200,
    executor_users=64,
    executor_one_caller=40,
    rounds=5,
    live_round=140,
    paper_round=140,
    executor_deadline_seconds=20.0,
    scan_jobs=2000,
    scan_instances=(1, 2, 4, 8),
    scan_deadline_seconds=15.0,
    storm_runs=3,
    storm_rounds=4,
    storm_jobs=30,
    storm_instances=4,
    storm_users=8,
    storm_requests=8,
    storm_limit=3,
)

QUICK = Sizes(
    threads=16,
    history=(0, 20_000),
    budget_users=256,
    budget_tasks=400,
    budget_round=200,
    budget_deadline_seconds=8.0,
    budget_one_caller=60,
    executor_users=32,
    executor_one_caller=15,
    rounds=3,
    live_round=60,
    paper_round=60,
    executor_deadline_seconds=10.0,
    scan_jobs=300,
    scan_instances=(1, 4),
    scan_deadline_seconds=8.0,
    storm_runs=2,
    storm_rounds=3,
    storm_jobs=15,
    storm_instances=4,
    storm_users=6,
    storm_requests=6,
    storm_limit=2,
)

SMOKE = dataclasses.replace(
    QUICK,
    threads=8,
    history=(0, 2_000),
    budget_users=16,
    budget_tasks=40,
    budget_round=40,
    budget_one_caller=5,
    executor_users=8,
    executor_one_caller=4,
    rounds=2,
    live_round=16,
    paper_round=16,
    scan_jobs=40,
    scan_instances=(1, 2),
    storm_runs=2,
    storm_rounds=3,
    storm_jobs=12,
    storm_users=4,
    storm_requests=6,
)
