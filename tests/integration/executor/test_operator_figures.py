"""The operator's first figures (GetOperatorFigures, shown by ``oraclectl status``;
docs/design.md#what-the-operator-sees), from a real executor server against the exchange
simulator: an execution stuck UNKNOWN shows with its age, a reconciler pass that could not look
its order up shows as a failure, and the weight left is what the exchange's rate-limit header (or
its ban) said."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import grpc
import pytest
from oracle.executor.v1 import executor_service_pb2 as pb
from oracle.executor.v1 import executor_service_pb2_grpc as pb_grpc

from sim.bitvavo import DEFAULT_TRADE_KEY
from tests.harness import SCANNER_TOKEN, VIEWER_TOKEN, Postgres, channel, eventually
from tests.integration.executor.kit import Exchange, Executor, failure, in_process_executor, seed_proposal, user
from tests.integration.executor.test_money_view import oraclectl


def figures(ex: Executor) -> pb.GetOperatorFiguresResponse:
    reply: pb.GetOperatorFiguresResponse = ex.operator.GetOperatorFigures(pb.GetOperatorFiguresRequest())
    return reply


def startup_pass_done(ex: Executor, since: datetime) -> bool:
    """The executor's startup pass has ended (the reconciler's record is the test process's: an
    earlier test's executor may have left a pass in it, before ``since``)."""
    reconciler = figures(ex).reconciler
    return reconciler.HasField("last_pass_at") and reconciler.last_pass_at.ToDatetime(tzinfo=UTC) >= since


def trading_key(reply: pb.GetOperatorFiguresResponse) -> pb.ExchangeWeight:
    [weight] = [w for w in reply.exchange_weight if w.client == "trading key"]
    return weight


def test_an_execution_stuck_unknown_and_a_failed_lookup_show_in_the_figures_and_in_oraclectl_status(
    private_postgres: Postgres,
    exchange: Exchange,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a database of its own: the figures are account-wide, so only this test's executions count
    postgres = private_postgres
    uid, started = user(), datetime.now(UTC)
    with in_process_executor(postgres, exchange.url) as ex:
        # the startup pass first (over an empty book): then every pass below is this test's
        assert eventually(lambda: startup_pass_done(ex, started), timeout=60)
        assert list(figures(ex).not_final) == []
        ex.set_policy(uid)
        exchange.admin.drop_next_order(place=True)
        execution = ex.execute(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")))
        assert execution.status == pb.EXECUTION_STATUS_UNKNOWN

        stuck = figures(ex)
        [unknown] = stuck.not_final
        assert (unknown.mode, unknown.status, unknown.executions) == (
            pb.EXECUTION_MODE_LIVE,
            pb.EXECUTION_STATUS_UNKNOWN,
            1,
        )
        assert unknown.HasField("oldest_age") and unknown.oldest_age.seconds >= 0

        # Every lookup of the order fails: the pass changes nothing and the failure shows.
        before = stuck.reconciler
        exchange.admin.fail_next_request("/order", 107, count=1000)
        assert ex.reconcile(uid).unresolved == 1
        failed = figures(ex).reconciler
        assert failed.passes == before.passes + 1
        assert (failed.last_pass_failures, failed.last_pass_changed) == (1, 0)
        assert (failed.failures, failed.last_failure_stage) == (before.failures + 1, "lookup")
        assert failed.last_pass_at.ToDatetime() >= before.last_pass_at.ToDatetime()

        code, out, _ = oraclectl(ex, capsys, monkeypatch, "--json", "status")
        assert code == 0
        operator = json.loads(out)["operator"]
        assert operator["not_final"] == [
            {
                "mode": "EXECUTION_MODE_LIVE",
                "status": "EXECUTION_STATUS_UNKNOWN",
                "executions": "1",
                "oldest_age": operator["not_final"][0]["oldest_age"],
            }
        ]
        assert operator["reconciler"]["last_pass_failures"] == "1"
        assert operator["reconciler"]["last_failure_stage"] == "lookup"
        code, out, _ = oraclectl(ex, capsys, monkeypatch, "status")
        assert code == 0
        assert "executions not final: live unknown 1 (oldest " in out
        assert "changed 0, failures 1" in out and "latest lookup" in out

        # The next pass finds the order: nothing is left, and the pass had no failure.
        exchange.admin.clear_faults()
        ex.reconcile(uid)
        settled = figures(ex)
        assert list(settled.not_final) == []
        assert (settled.reconciler.last_pass_failures, settled.reconciler.last_pass_changed) == (0, 1)
        code, out, _ = oraclectl(ex, capsys, monkeypatch, "status")
        assert "executions not final: none" in out


def test_the_weight_left_is_what_the_exchange_last_said(private_postgres: Postgres, exchange: Exchange) -> None:
    # a database of its own and the startup pass over: nothing but this test's calls spends the
    # trading key's weight between the executor's last answer and the simulator's count
    postgres, started = private_postgres, datetime.now(UTC)
    with in_process_executor(postgres, exchange.url) as ex:
        assert eventually(lambda: startup_pass_done(ex, started), timeout=60)
        # The simulator's count of the trading key's weight, compared with what the executor
        # remembered from the header of its last signed answer. A minute boundary between the two
        # readings starts the simulator's count over: then the check is made again.
        for _ in range(3):
            uid = user()
            ex.set_policy(uid)
            ex.execute(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")))
            weight = trading_key(figures(ex))
            usage = exchange.admin.rate_limit_usage()[f"key:{DEFAULT_TRADE_KEY}"]
            if weight.resets_at.ToDatetime(tzinfo=UTC) > datetime.now(UTC):
                break
        assert weight.known
        assert weight.remaining == usage["remaining"] < 1000

        # A ban: the exchange says 105 with its end; the weight left is 0 until then.
        exchange.admin.exhaust_rate_limit(key=DEFAULT_TRADE_KEY)
        uid = user()
        ex.set_policy(uid)
        ex.refused(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")))  # its balance read is banned
        banned = trading_key(figures(ex))
        usage = exchange.admin.rate_limit_usage()[f"key:{DEFAULT_TRADE_KEY}"]
        assert banned.remaining == 0
        assert banned.resets_at.ToMilliseconds() == usage["bannedUntil"]


def test_the_operator_and_the_viewer_read_the_figures_the_scanner_does_not(
    postgres: Postgres, exchange: Exchange
) -> None:
    with in_process_executor(postgres, exchange.url) as ex:
        assert figures(ex).HasField("as_of")
        with channel(ex.port, VIEWER_TOKEN) as chan:
            assert (
                pb_grpc.ExecutorServiceStub(chan).GetOperatorFigures(pb.GetOperatorFiguresRequest()).HasField("as_of")
            )
        with channel(ex.port, SCANNER_TOKEN) as chan:
            stub = pb_grpc.ExecutorServiceStub(chan)
            report = failure(lambda: stub.GetOperatorFigures(pb.GetOperatorFiguresRequest()))
        assert (report.code, report.reason) == (grpc.StatusCode.PERMISSION_DENIED, "METHOD_NOT_ALLOWED")
