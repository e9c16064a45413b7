"""Benchmark 1: the budget service's ReserveCall → CommitCall, as every LLM call pays it.

Two ``python -m services.budget`` processes on the benchmark database (each with its own pool),
client threads calling them as the scanner principal; each task is one ReserveCall followed by
the CommitCall of its reservation (what ``services.scanner.budget_client.BudgetClient.call`` does around a
successful LLM call). Two scenarios:

* ``many-users``: tasks spread round-robin over many users, so the per-user lock rarely collides
  and the measurement is of the service, its pool and PostgreSQL.
  It runs in ``Sizes.rounds`` rounds, each followed by a round of its floor (``bench.floors``).
* ``hot-user``: every task for one user, the worst case: each reservation waits for the
  previous one's transaction to release that user's lock.

A third scenario, ``one-caller``, is a single client thread: the latency of a call that waits for
nobody, to compare the loaded numbers with.

Limits are raised (``BUDGET_DEFAULT_*_CALLS``) so no call is refused for budget; the work per
call is the same as at any limit. Afterwards the usage log must hold exactly one committed row
per successful task, and none left reserved.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import psycopg
from oracle.budget.v1 import budget_service_pb2 as pb
from oracle.budget.v1 import budget_service_pb2_grpc as pb_grpc

from bench import floors
from bench.infra import Infra
from bench.load import Outcome, Run, Task, merge, run
from bench.machine import CpuProbe, merge_cpu
from bench.results import Check, Scenario
from bench.sizes import Sizes
from shared.channel import open_channel

CALL_TIMEOUT_SECONDS = 10.0
PROCESSES = 2
LIMIT = "10000000"
MODEL = "gpt-4o-mini"


def service_env(infra: Infra) -> dict[str, str]:
    """Production defaults except: loopback, this run's tokens, limits that never refuse."""
    return {
        "BUDGET_LISTEN_ADDR": "127.0.0.1:0",
        "BUDGET_DATABASE_URL": infra.role_url("budget"),
        "BUDGET_PRINCIPAL_TOKENS": infra.tokens.principal_tokens,
        "BUDGET_DEFAULT_DAILY_CALLS": LIMIT,
        "BUDGET_DEFAULT_HOURLY_CALLS": LIMIT,
        "BUDGET_GRACE_SECONDS": "1",
    }


def reserve_commit(stub: pb_grpc.BudgetServiceStub, user_id: str) -> Callable[[], Outcome]:
    """One task: ReserveCall, then CommitCall of that reservation (timed separately too)."""
    request = pb.ReserveCallRequest(
        user_id=user_id, purpose="bench", model=MODEL, estimated_prompt_tokens=900, requested_max_tokens=400
    )

    def task() -> Outcome:
        t0 = time.perf_counter()
        reply = stub.ReserveCall(request, timeout=CALL_TIMEOUT_SECONDS)
        t1 = time.perf_counter()
        stub.CommitCall(
            pb.CommitCallRequest(
                user_id=user_id,
                reservation_id=reply.reservation.reservation_id,
                prompt_tokens=850,
                completion_tokens=300,
            ),
            timeout=CALL_TIMEOUT_SECONDS,
        )
        t2 = time.perf_counter()
        return Outcome(parts={"reserve": t1 - t0, "commit": t2 - t1})

    return task


def run_budget(
    infra: Infra,
    sizes: Sizes,
    *,
    history: int,
    every_scenario: bool,
    into: list[Scenario],
    stop: threading.Event,
    say: Callable[[str], None],
) -> None:
    """The scenarios against one pair of budget processes (stopped afterwards); ``many-users`` in
    ``sizes.rounds`` rounds, each followed by a round of its floor (``bench.floors``: the same SQL
    issued directly, as many users, threads and tasks). Without ``every_scenario`` only
    ``many-users`` and its floor run. Each finished scenario is appended to ``into`` at once, so
    an interrupted run still shows it."""
    tag = f"{int(time.time())}-h{history}"
    with infra.group(), ExitStack() as channels:
        say(f"starting {PROCESSES} budget processes")
        services = infra.services("services.budget", [service_env(infra)] * PROCESSES, name="budget")
        stubs = [
            pb_grpc.BudgetServiceStub(channels.enter_context(open_channel(s.target, infra.tokens.scanner)))
            for s in services
        ]
        say("warm-up (not measured)")
        warm = [reserve_commit(stubs[i % PROCESSES], f"bench-warm-{tag}-{i % 8}") for i in range(sizes.threads * 4)]
        run(warm, threads=sizes.threads, deadline_seconds=30, stop=stop)

        probe_groups: dict[str, Callable[[], float]] = {s.name: s.cpu_seconds for s in services}
        probe_groups["postgres"] = infra.postgres_cpu_seconds
        one = ("one-caller", [f"bench-one-{tag}-{i}" for i in range(8)], 1, sizes.budget_one_caller)
        hot = ("hot-user", [f"bench-hot-{tag}"], sizes.threads, sizes.budget_tasks)
        many = [f"bench-many-{tag}-{i}" for i in range(sizes.budget_users)]
        if every_scenario and not stop.is_set():
            into.append(_one_go(infra, sizes, stubs, probe_groups, one, history=history, stop=stop, say=say))
        if not stop.is_set():
            _many_users(infra, sizes, stubs, probe_groups, many, history=history, into=into, stop=stop, say=say)
        if every_scenario and not stop.is_set():
            into.append(_one_go(infra, sizes, stubs, probe_groups, hot, history=history, stop=stop, say=say))


def _one_go(
    infra: Infra,
    sizes: Sizes,
    stubs: list[pb_grpc.BudgetServiceStub],
    probe_groups: dict[str, Callable[[], float]],
    scenario: tuple[str, list[str], int, int],
    *,
    history: int,
    stop: threading.Event,
    say: Callable[[str], None],
) -> Scenario:
    """A scenario measured in one run (one-caller, hot-user: no floor); ``scenario`` is its
    (name, users, client threads, tasks)."""
    name, users, threads, planned = scenario
    say(f"budget {name}: {planned} tasks from {threads} thread(s) over {len(users)} user(s)")
    tasks: list[Task] = [reserve_commit(stubs[k % PROCESSES], users[k % len(users)]) for k in range(planned)]
    probe = CpuProbe(probe_groups)
    probe.start()
    measured = run(tasks, threads=threads, deadline_seconds=sizes.budget_deadline_seconds, stop=stop)
    cpu = probe.stop()
    parameters = {"budget_processes": PROCESSES, "tasks_planned": planned, "principal": "scanner"}
    return _scenario(
        infra, name, users, runs=[measured], cpu=[cpu], sizes=sizes, history=history, parameters=parameters
    )


def _many_users(
    infra: Infra,
    sizes: Sizes,
    stubs: list[pb_grpc.BudgetServiceStub],
    probe_groups: dict[str, Callable[[], float]],
    users: list[str],
    *,
    history: int,
    into: list[Scenario],
    stop: threading.Event,
    say: Callable[[str], None],
) -> None:
    """``many-users`` and its floor, alternating round by round (service, floor, service, ...), so
    that each pair of rounds sees the same moment of the machine. The floor issues the same SQL as
    the budget role for as many users of its own (``<user>-floor``), threads and tasks."""
    floor_users = [f"{u}-floor" for u in users]
    n = floors.PROCESSES
    service_runs: list[Run] = []
    floor_runs: list[Run] = []
    service_cpu: list[dict[str, Any]] = []
    floor_cpu: list[dict[str, Any]] = []
    for r in range(sizes.rounds):
        if stop.is_set():
            break
        say(
            f"budget many-users: round {r + 1}/{sizes.rounds}, {sizes.budget_round} tasks from {sizes.threads}"
            f" threads over {len(users)} users"
        )
        tasks = [reserve_commit(stubs[k % PROCESSES], users[k % len(users)]) for k in range(sizes.budget_round)]
        probe = CpuProbe(probe_groups)
        probe.start()
        service_runs.append(
            run(tasks, threads=sizes.threads, deadline_seconds=sizes.budget_deadline_seconds, stop=stop)
        )
        service_cpu.append(probe.stop())
        if stop.is_set():
            break
        say(f"budget many-users floor: round {r + 1}/{sizes.rounds}, {sizes.budget_round} tasks")
        specs = [
            floors.BudgetSpec(infra.role_url("budget"), tuple(floor_users[i::n]), sizes.budget_round // n)
            for i in range(n)
        ]
        probe = CpuProbe({"postgres": infra.postgres_cpu_seconds})
        probe.start()
        measured, _ = floors.run_in_processes(
            specs, threads=sizes.threads, deadline_seconds=sizes.budget_deadline_seconds
        )
        floor_cpu.append(probe.stop())
        floor_runs.append(measured)
    rounds = {"rounds": sizes.rounds, "per_round": sizes.budget_round}
    parameters = {"budget_processes": PROCESSES, **rounds, "principal": "scanner"}
    into.append(
        _scenario(
            infra,
            "many-users",
            users,
            runs=service_runs,
            cpu=service_cpu,
            sizes=sizes,
            history=history,
            parameters=parameters,
        )
    )
    if not stop.is_set():
        parameters = {"floor_processes": n, **rounds, "statements": "bench/floors.py"}
        into.append(
            _scenario(
                infra,
                "many-users",
                floor_users,
                runs=floor_runs,
                cpu=floor_cpu,
                sizes=sizes,
                history=history,
                parameters=parameters,
                kind="floor",
            )
        )


def _scenario(
    infra: Infra,
    name: str,
    users: list[str],
    *,
    runs: list[Run],
    cpu: list[dict[str, Any]],
    sizes: Sizes,
    history: int,
    parameters: dict[str, Any],
    kind: str = "service",
) -> Scenario:
    """One scenario from its rounds (pooled in ``summary``, one by one in ``rounds``), with the
    checks that every success is one committed row of its users and none is left reserved."""
    threads = max(r.threads for r in runs) if runs else 0
    measured = merge(runs, planned=sum(r.planned for r in runs), threads=threads)
    return Scenario(
        benchmark="budget",
        name=name,
        unit="reserve+commit",
        parameters={
            "client_threads": threads,
            "users": len(users),
            "deadline_seconds": sizes.budget_deadline_seconds,
            "rpcs_per_task": 2,
            **parameters,
        },
        summary=measured.summary(),
        checks=_checks(infra, users, len(measured.ok), sum(measured.failures.values())),
        cpu=merge_cpu(cpu),
        history=history,
        kind=kind,
        rounds=[r.brief() for r in runs],
    )


def _checks(infra: Infra, users: list[str], ok: int, failed: int) -> list[Check]:
    with psycopg.connect(infra.admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM oracle.gpt_usage_log WHERE user_id = ANY(%s) GROUP BY status", (users,)
        ).fetchall()
    by_status: dict[str, Any] = {str(status): int(n) for status, n in rows}
    return [
        Check("no failed task", 0, failed),
        Check("committed rows = successful tasks", ok, by_status.get("committed", 0)),
        Check("rows left reserved", 0, by_status.get("reserved", 0)),
    ]
