"""ExecuteProposal end to end: real PostgreSQL, real gRPC, the real SDK against the simulator."""

from __future__ import annotations

import grpc
from oracle.executor.v1 import executor_service_pb2 as pb

from tests.harness import Postgres
from tests.integration.executor.kit import (
    OPERATOR_ID,
    Exchange,
    executions,
    failure,
    fills,
    in_process_executor,
    seed_proposal,
    unpack_execution,
    user,
)


def test_a_buy_is_filled_once_with_its_client_order_id(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url) as ex:
        ex.set_policy(uid)
        pid = seed_proposal(postgres, uid, price=exchange.price("BTC-EUR"))
        execution = ex.execute(uid, pid)

        assert execution.status == pb.EXECUTION_STATUS_FILLED
        assert execution.mode == pb.EXECUTION_MODE_LIVE
        orders = exchange.orders()
        assert len(orders) == 1
        assert orders[0]["clientOrderId"] == execution.client_order_id
        assert orders[0]["orderId"] == execution.exchange_order_id
        assert orders[0]["operatorId"] == OPERATOR_ID
        assert orders[0]["amountQuote"] == "10"
        assert [f["execution_id"] for f in fills(postgres, uid)] == [execution.execution_id]

        again = failure(lambda: ex.execute(uid, pid))
        assert again.code is grpc.StatusCode.ALREADY_EXISTS
        assert again.reason == "EXECUTION_EXISTS"
        carried = unpack_execution(again)
        assert carried.execution_id == execution.execution_id
        assert carried.status == pb.EXECUTION_STATUS_FILLED
        assert exchange.post_count() == 1
        assert len(executions(postgres, uid)) == 1
