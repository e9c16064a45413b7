"""What the budget's calls leave on this process's /metrics: one oracle_rpc_server_calls_total
and one oracle_rpc_server_duration_seconds observation per call, each labelled by service,
method and the status code the call ended with (the alert rules divide the error codes by all),
and the tokens and cost of committed calls by model and kind."""

from __future__ import annotations

import grpc
from oracle.budget.v1 import budget_service_pb2 as pb
from oracle.budget.v1 import budget_service_pb2_grpc as pb_grpc

from tests.harness import VIEWER_TOKEN, Metrics, Postgres, channel, new_user_id, scrape
from tests.integration.budget.servers import failure, in_process_budget

RESERVE = "/oracle.budget.v1.BudgetService/ReserveCall"
COMMIT = "/oracle.budget.v1.BudgetService/CommitCall"
CALLS = "oracle_rpc_server_calls_total"
DURATIONS = "oracle_rpc_server_duration_seconds_count"
MODEL = "gpt-4o-mini"


def moved(before: Metrics, after: Metrics, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


def test_every_call_is_counted_by_method_and_code(postgres: Postgres, metrics_port: int) -> None:
    with in_process_budget(postgres) as budget:
        user = new_user_id("calls")
        before = scrape(metrics_port)
        reservations = [budget.reserve(user, prompt=100, max_tokens=200) for _ in range(3)]
        budget.stub.CommitCall(
            pb.CommitCallRequest(
                user_id=user, reservation_id=reservations[0].reservation_id, prompt_tokens=90, completion_tokens=40
            )
        )
        invalid = [budget.refused("", prompt=100) for _ in range(2)]  # no user id
        with channel(budget.port, VIEWER_TOKEN) as viewer:
            denied = failure(lambda: budget_stub(viewer).ReserveCall(reserve_request(user)))
        with channel(budget.port, "not-a-token-0123456789abcdef") as stranger:
            unknown = failure(lambda: budget_stub(stranger).ReserveCall(reserve_request(user)))
        after = scrape(metrics_port)

    assert {r.code for r in invalid} == {grpc.StatusCode.INVALID_ARGUMENT}
    assert (denied.code, unknown.code) == (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)
    expected = {
        (RESERVE, "OK"): 3,
        (COMMIT, "OK"): 1,
        (RESERVE, "INVALID_ARGUMENT"): 2,
        (RESERVE, "PERMISSION_DENIED"): 1,
        (RESERVE, "UNAUTHENTICATED"): 1,
        (COMMIT, "INVALID_ARGUMENT"): 0,
    }
    for (method, code), count in expected.items():
        labels = {"service": "budget", "method": method, "code": code}
        assert moved(before, after, CALLS, **labels) == count, (method, code)
        assert moved(before, after, DURATIONS, **labels) == count, (method, code)
    # Counted once each: no call is counted under another code too.
    assert moved(before, after, CALLS, service="budget") == sum(expected.values())
    assert moved(before, after, "oracle_budget_tokens_total", model=MODEL, kind="prompt") == 90
    assert moved(before, after, "oracle_budget_tokens_total", model=MODEL, kind="completion") == 40
    assert moved(before, after, "oracle_budget_cost_micros_total", model=MODEL) > 0


def budget_stub(chan: grpc.Channel) -> pb_grpc.BudgetServiceStub:
    return pb_grpc.BudgetServiceStub(chan)


def reserve_request(user: str) -> pb.ReserveCallRequest:
    return pb.ReserveCallRequest(
        user_id=user, purpose="test", model=MODEL, estimated_prompt_tokens=100, requested_max_tokens=200
    )
