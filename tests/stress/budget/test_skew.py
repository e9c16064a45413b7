"""A budget storm through two budget processes whose own clocks are 10 minutes apart (one 5
minutes ahead of the machine, one 5 minutes behind): exactly the grants of an unskewed storm.

The hourly window is placed, and every reservation stamped, on the database's clock
(docs/design.md#one-clock-per-decision). Were a replica's own clock to decide, the one running
ahead would see calls reserved 57 minutes ago as outside the hour and grant them again. The skew
is given through the test-only entry point tests/support/budget_with_hooks.py.
"""

from __future__ import annotations

import threading
import uuid
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

CALLERS = 40
SKEW_SECONDS = 300
HOURLY_LIMIT = 5
EARLIER = 3  # calls reserved 57 minutes ago, inside the hour on the database's clock


def seed_reservations(postgres: Postgres, user: str, count: int, *, minutes_ago: int) -> None:
    with postgres.admin() as conn:
        for _ in range(count):
            conn.execute(
                "INSERT INTO oracle.gpt_usage_log (reservation_id, user_id, purpose, model, status, max_tokens,"
                " estimated_tokens, estimated_cost_micros, reserved_at, expires_at)"
                " SELECT %s, %s, 'earlier', 'gpt-4o-mini', 'reserved', 100, 200, 0,"
                " t.now - make_interval(mins => %s), t.now + interval '1 hour' FROM (SELECT oracle.clock() AS now) t",
                (str(uuid.uuid4()), user, minutes_ago),
            )


@pytest.mark.stress
def test_hourly_storm_through_skewed_replicas_grants_exactly_the_room_left(postgres: Postgres, tmp_path: Path) -> None:
    env = service_env(postgres, db_pool_max="12", db_pool_timeout_seconds="30", max_workers="40")
    user = new_user_id("skew")
    with ExitStack() as stack:
        services: list[ServiceProcess] = [
            stack.enter_context(
                running_process(
                    "tests.support.budget_with_hooks",
                    env,
                    tmp_path / f"budget{skew:+d}.log",
                    args=["--clock-skew-seconds", str(skew)],
                )
            )
            for skew in (SKEW_SECONDS, -SKEW_SECONDS)
        ]
        stubs = [pb_grpc.BudgetServiceStub(stack.enter_context(channel(s.port))) for s in services]
        stubs[0].SetLimits(
            pb.SetLimitsRequest(user_id=user, limits=pb.Limits(daily_calls=100, hourly_calls=HOURLY_LIMIT))
        )
        seed_reservations(postgres, user, EARLIER, minutes_ago=57)

        barrier = threading.Barrier(CALLERS)
        request = pb.ReserveCallRequest(
            user_id=user, purpose="storm", model="gpt-4o-mini", estimated_prompt_tokens=100, requested_max_tokens=100
        )

        def reserve(i: int) -> tuple[str, str]:
            barrier.wait(timeout=60)
            try:
                reply = stubs[i % 2].ReserveCall(request, timeout=60)
            except grpc.RpcError as exc:
                report = from_rpc_error(exc)
                return report.code.name, report.reason
            return "OK", reply.reservation.reservation_id

        with ThreadPoolExecutor(CALLERS) as pool:
            outcomes = list(pool.map(reserve, range(CALLERS)))

    granted = [detail for code, detail in outcomes if code == "OK"]
    refused = [(code, detail) for code, detail in outcomes if code != "OK"]
    assert len(granted) == HOURLY_LIMIT - EARLIER, f"granted {len(granted)}"
    assert refused == [("RESOURCE_EXHAUSTED", "BUDGET_EXHAUSTED")] * (CALLERS - len(granted))
    with postgres.admin() as conn:
        row = conn.execute(
            "SELECT count(*) FROM oracle.gpt_usage_log WHERE user_id = %s AND purpose = 'storm'", (user,)
        ).fetchone()
    assert row == (HOURLY_LIMIT - EARLIER,)
