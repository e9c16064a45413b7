"""Benchmark 1: the budget service's ReserveCall → CommitCall, as every LLM call pays it.

Two ``python -m services.budget`` processes on the benchmark database (each with its own pool),
client threads calling them as the scanner principal; each task is one ReserveCall followed by
the CommitCall of its reservation (what ``services.scanner.budget_client.BudgetClient.call`` does around a
successful LLM call). Two scenarios:

* ``many-users``: tasks spread round-robin over many users, so the per-user lock rarely collides
  and the measurement is of the service, its pool and PostgreSQL.
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
from bench.load import Outcome, Task, run
from bench.machine import CpuProbe
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
    """The scenarios against one pair of budget processes (stopped afterwards), then the floor of
    ``many-users`` (``bench.floors``: the same SQL issued directly, same users, threads and tasks).
    Without ``every_scenario`` only ``many-users`` and its floor run. Each finished scenario is
    appended to ``into`` at once, so an interrupted run still shows it."""
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
        many = [f"bench-many-{tag}-{i}" for i in range(sizes.budget_users)]
        for name, users, threads, planned in (
            ("one-caller", [f"bench-one-{tag}-{i}" for i in range(8)], 1, sizes.budget_one_caller),
            ("many-users", many, sizes.threads, sizes.budget_tasks),
            ("hot-user", [f"bench-hot-{tag}"], sizes.threads, sizes.budget_tasks),
        ):
            if stop.is_set():
                break
            if name != "many-users" and not every_scenario:
                continue
            say(f"budget {name}: {planned} tasks from {threads} thread(s) over {len(users)} user(s)")
            tasks: list[Task] = [reserve_commit(stubs[k % PROCESSES], users[k % len(users)]) for k in range(planned)]
            probe = CpuProbe(probe_groups)
            probe.start()
            measured = run(tasks, threads=threads, deadline_seconds=sizes.budget_deadline_seconds, stop=stop)
            cpu = probe.stop()
            into.append(
                Scenario(
                    benchmark="budget",
                    name=name,
                    unit="reserve+commit",
                    parameters={
                        "client_threads": threads,
                        "budget_processes": PROCESSES,
                        "users": len(users),
                        "tasks_planned": planned,
                        "deadline_seconds": sizes.budget_deadline_seconds,
                        "rpcs_per_task": 2,
                        "principal": "scanner",
                    },
                    summary=measured.summary(),
                    checks=_checks(infra, users, len(measured.ok), sum(measured.failures.values())),
                    cpu=cpu,
                    history=history,
                )
            )
        if not stop.is_set():
            into.append(_floor(infra, sizes, many, history=history, stop=stop, say=say))


def _floor(
    infra: Infra, sizes: Sizes, users: list[str], *, history: int, stop: threading.Event, say: Callable[[str], None]
) -> Scenario:
    """many-users again, as the same SQL issued directly by the budget role (``bench.floors``)."""
    floor_users = [f"{u}-floor" for u in users]
    say(f"budget floor: {sizes.budget_tasks} tasks from {sizes.threads} threads")
    n = floors.PROCESSES
    specs = [
        floors.BudgetSpec(infra.role_url("budget"), tuple(floor_users[i::n]), sizes.budget_tasks // n) for i in range(n)
    ]
    probe = CpuProbe({"postgres": infra.postgres_cpu_seconds})
    probe.start()
    measured, _ = floors.run_in_processes(specs, threads=sizes.threads, deadline_seconds=sizes.budget_deadline_seconds)
    cpu = probe.stop()
    return Scenario(
        benchmark="budget",
        name="many-users",
        unit="reserve+commit",
        parameters={
            "client_threads": sizes.threads,
            "floor_processes": floors.PROCESSES,
            "users": len(floor_users),
            "statements": "bench/floors.py",
        },
        summary=measured.summary(),
        checks=_checks(infra, floor_users, len(measured.ok), sum(measured.failures.values())),
        cpu=cpu,
        history=history,
        kind="floor",
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
