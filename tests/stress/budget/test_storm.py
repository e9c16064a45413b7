"""Zero overshoot (docs/design.md#budget-zero-overshoot) under a storm: 200 concurrent ReserveCalls through three budget service processes
(each with its own pool) against a daily limit of 10 → exactly 10 granted, 190
RESOURCE_EXHAUSTED, and exactly 10 counted rows. The processes run the test-only entry point
tests/support/budget_with_hooks.py, whose hook holds each granted reservation between its count
and its insert for 50 ms, so without the per-user lock nearly
every caller would count before anyone inserted and the limit would be overshot many times."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import grpc
import pytest
from oracle.budget.v1 import budget_service_pb2 as pb
from oracle.budget.v1 import budget_service_pb2_grpc as pb_grpc

from shared.errors import from_rpc_error
from tests.harness import Postgres, ServiceProcess, channel, new_user_id, running_process
from tests.integration.budget.servers import service_env

CALLERS = 200
INSTANCES = 3
DAILY_LIMIT = 10
DELAYED_BUDGET = "tests.support.budget_with_hooks"


@pytest.mark.stress
def test_two_hundred_concurrent_reservations_through_three_instances_grant_exactly_the_limit(
    postgres: Postgres, tmp_path: Path
) -> None:
    env = service_env(
        postgres,
        db_pool_max="12",
        db_pool_timeout_seconds="30",
        max_workers="80",
    )
    user = new_user_id("storm")
    with ExitStack() as stack:
        with ThreadPoolExecutor(INSTANCES) as starter:  # start the three processes side by side
            futures = [
                starter.submit(
                    stack.enter_context,
                    running_process(DELAYED_BUDGET, env, tmp_path / f"b{i}.log", args=["--reserve-delay-ms", "50"]),
                )
                for i in range(INSTANCES)
            ]
            services: list[ServiceProcess] = [f.result() for f in futures]
        assert len({s.port for s in services}) == INSTANCES
        channels = [stack.enter_context(channel(s.port)) for s in services]
        stubs = [pb_grpc.BudgetServiceStub(c) for c in channels]
        stubs[0].SetLimits(
            pb.SetLimitsRequest(user_id=user, limits=pb.Limits(daily_calls=DAILY_LIMIT, hourly_calls=DAILY_LIMIT))
        )

        barrier = threading.Barrier(CALLERS)
        request = pb.ReserveCallRequest(
            user_id=user, purpose="storm", model="gpt-4o-mini", estimated_prompt_tokens=100, requested_max_tokens=100
        )

        def reserve(i: int) -> tuple[str, str]:
            barrier.wait(timeout=60)
            try:
                reply = stubs[i % INSTANCES].ReserveCall(request, timeout=60)
            except grpc.RpcError as exc:
                report = from_rpc_error(exc)
                return report.code.name, report.reason
            return "OK", reply.reservation.reservation_id

        with ThreadPoolExecutor(CALLERS) as pool:
            outcomes = list(pool.map(reserve, range(CALLERS)))

    granted = [detail for code, detail in outcomes if code == "OK"]
    refused = [(code, detail) for code, detail in outcomes if code != "OK"]
    assert len(granted) == DAILY_LIMIT, f"granted {len(granted)}"
    assert len(set(granted)) == DAILY_LIMIT
    assert refused == [("RESOURCE_EXHAUSTED", "BUDGET_EXHAUSTED")] * (CALLERS - DAILY_LIMIT)
    with postgres.admin() as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE status <> 'released'), count(*) FROM oracle.gpt_usage_log"
            " WHERE user_id = %s",
            (user,),
        ).fetchone()
    assert row is not None
    counted, every_row = row
    assert (counted, every_row) == (DAILY_LIMIT, DAILY_LIMIT)
