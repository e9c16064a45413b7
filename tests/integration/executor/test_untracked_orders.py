"""No order ever untracked (docs/design.md#late-send-deadline, #found-late-adoption, #reconciler):
a stall before the signature, an order that appears after its execution FAILED, history beyond
24 h with closed orders not found by clientOrderId, other users' rows of unknown shapes, a
skewed exchange clock, fees that settle after the answer and the reconciler's weight bound —
each against the simulator, counted there."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from oracle.executor.v1 import executor_service_pb2 as pb

from services.executor.execution import client_order_id
from services.executor.model import OrderView, Side
from services.executor.venue import Venue
from shared.exchange.weights import HISTORY_WEIGHT
from tests.harness import Postgres, scrape
from tests.integration.executor.kit import (
    Exchange,
    Executor,
    VenueProxy,
    executions,
    in_process_executor,
    payload,
    running_exchange,
    seed_proposal,
    trade_client,
    user,
    violation_types,
)

# The kit's timings: access window 1 s + safety margin 0.5 s after the signing deadline.
ABSENT_AFTER_DEADLINE_MS = 1_500
HOUR_MS = 3_600_000


def _orders_of(exchange: Exchange, cid: str) -> list[dict[str, Any]]:
    return [o for o in exchange.orders() if o.get("clientOrderId") == cid]


def _no_failed_execution_has_an_order(postgres: Postgres, exchange: Exchange, uid: str) -> None:
    """The invariant: the database never says FAILED about an order the exchange holds."""
    held = {o.get("clientOrderId") for o in exchange.orders()}
    for row in executions(postgres, uid):
        if row["status"] == "FAILED":
            assert row["client_order_id"] not in held, row


class _StallBeforeSigning(VenueProxy):
    """A process that freezes inside the send — after every check the executor makes before
    calling the venue, before the request is signed — until exchange time is past the signing
    deadline + access window + margin, while another replica reconciles."""

    def __init__(self, inner: Venue, during_stall: list[Any]) -> None:
        super().__init__(inner)
        self.during_stall = during_stall

    def place(
        self,
        *,
        market: str,
        side: Side,
        amount_quote: Decimal,
        client_order_id: str,
        sign_by_ms: int,
        amount: Decimal | None = None,
    ) -> OrderView:
        while self.inner.exchange_now_ms() <= sign_by_ms + ABSENT_AFTER_DEADLINE_MS:  # the stall itself
            time.sleep(0.05)
        for action in self.during_stall:
            action()
        return self.inner.place(
            market=market,
            side=side,
            amount_quote=amount_quote,
            client_order_id=client_order_id,
            sign_by_ms=sign_by_ms,
            amount=amount,
        )


def test_a_stall_before_the_signature_sends_nothing_and_nothing_failed_is_at_the_exchange(
    postgres: Postgres, either_exchange: Exchange
) -> None:
    exchange = either_exchange
    uid = user()
    during_stall: list[Any] = []
    with (
        in_process_executor(postgres, exchange.url) as other,
        in_process_executor(postgres, exchange.url, venue=lambda v: _StallBeforeSigning(v, during_stall)) as ex,
    ):
        ex.set_policy(uid)
        verdicts: list[pb.ReconcileExecutionsResponse] = []
        during_stall.append(lambda: verdicts.append(other.reconcile(uid)))  # another replica, mid-stall
        execution = ex.execute(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")))

        # The other replica proved the order absent while the sender was frozen; the sender then
        # woke up and was refused at the signature: nothing was sent, ever.
        assert [v.changed for v in verdicts] == [1]
        assert execution.status == pb.EXECUTION_STATUS_FAILED
        assert exchange.post_count() == 0
        assert _orders_of(exchange, execution.client_order_id) == []
        reasons = {payload(e).get("reason") for e in ex.audit(uid, execution.execution_id)}
        assert "PROVEN_ABSENT" in reasons
        for _ in range(2):  # later passes of both replicas keep the database and the exchange agreeing
            ex.reconcile(uid)
            other.reconcile(uid)
        _no_failed_execution_has_an_order(postgres, exchange, uid)
        assert exchange.post_count() == 0


def test_a_stall_alone_fails_the_order_as_send_too_late_with_nothing_sent(
    postgres: Postgres, exchange: Exchange
) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url, venue=lambda v: _StallBeforeSigning(v, [])) as ex:
        ex.set_policy(uid)
        execution = ex.execute(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")))
        assert execution.status == pb.EXECUTION_STATUS_FAILED
        assert execution.error_code == "SEND_TOO_LATE"
        assert exchange.post_count() == 0


def _proven_absent(ex: Executor, exchange: Exchange, postgres: Postgres, uid: str, pid: str) -> pb.Execution:
    """Execute ``pid`` with its POST lost before the exchange placed it, then let exchange time run
    past the deadline: the reconciler proves it absent."""
    exchange.admin.fail_next_order(109, place=False)
    execution = ex.execute(uid, pid)
    assert execution.status == pb.EXECUTION_STATUS_UNKNOWN
    exchange.admin.advance_clock(5 * 60_000)
    ex.reconcile(uid)
    failed = ex.get(uid, execution.execution_id)
    assert failed.status == pb.EXECUTION_STATUS_FAILED and failed.error_code == "PROVEN_ABSENT"
    return failed


def test_an_order_that_appears_after_failed_is_adopted_and_counted_by_the_caps(
    postgres: Postgres, either_exchange: Exchange, metrics_port: int
) -> None:
    exchange = either_exchange
    uid = user()
    with in_process_executor(postgres, exchange.url) as ex:
        ex.set_policy(uid, daily_trade_cap=2)
        late_pid = seed_proposal(postgres, uid, price=exchange.price("BTC-EUR"))
        failed = _proven_absent(ex, exchange, postgres, uid, late_pid)
        assert ex.execute(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR"))).status == (
            pb.EXECUTION_STATUS_FILLED
        )  # the FAILED one does not count: this is trade 1 of 2

        # The order appears at the exchange after all (however it got there: a stall nobody
        # bounded, an exchange that accepted it late) under the execution's clientOrderId.
        cid = client_order_id(uid, late_pid)
        late = trade_client(exchange.url).place_order("BTC-EUR", "buy", "market", cid, amount_quote=Decimal("10"))

        found_late_before = scrape(metrics_port).value("oracle_executor_reconciler_found_late_total")
        changed = ex.reconcile(uid)
        assert [e.execution_id for e in changed.executions] == [failed.execution_id]
        # the figure the OracleOrderFoundLate alert reads moves on the scraped /metrics
        assert scrape(metrics_port).value("oracle_executor_reconciler_found_late_total") == found_late_before + 1
        adopted = ex.get(uid, failed.execution_id)
        assert adopted.status == pb.EXECUTION_STATUS_FILLED
        assert adopted.exchange_order_id == late.order_id
        found_late = [e for e in ex.audit(uid, failed.execution_id) if e.kind == "execution.found_late"]
        assert len(found_late) == 1
        assert (payload(found_late[0])["from"], payload(found_late[0])["to"]) == ("FAILED", "FILLED")
        with postgres.admin() as conn:
            recorded = conn.execute(
                "SELECT count(*) FROM oracle.trade_history WHERE execution_id = %s", (failed.execution_id,)
            ).fetchone()
        assert recorded is not None and recorded[0] == len(late.fills) > 0

        # It counts from now on: a third trade passes the daily cap of 2.
        refused = ex.refused(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")))
        assert "DAILY_CAP_REACHED" in violation_types(refused)
        _no_failed_execution_has_an_order(postgres, exchange, uid)
        assert exchange.post_count() == 3  # the lost one (never placed), trade 1, the late one


def test_a_failed_execution_is_no_longer_watched_after_the_watch_ends(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url) as ex:
        ex.set_policy(uid)
        pid = seed_proposal(postgres, uid, price=exchange.price("BTC-EUR"))
        failed = _proven_absent(ex, exchange, postgres, uid, pid)
        with postgres.admin() as conn:  # the 48 h watch is over
            conn.execute(
                "UPDATE oracle.trade_executions SET found_late_until = clock_timestamp() - interval '1 second'"
                " WHERE execution_id = %s",
                (failed.execution_id,),
            )
        trade_client(exchange.url).place_order(
            "BTC-EUR", "buy", "market", client_order_id(uid, pid), amount_quote=Decimal("10")
        )
        assert ex.reconcile(uid).examined == 0
        assert ex.get(uid, failed.execution_id).status == pb.EXECUTION_STATUS_FAILED


def test_an_execution_30_hours_old_is_found_in_24_hour_windows_without_closed_orders_by_client_order_id(
    postgres: Postgres, exchange: Exchange
) -> None:
    assert exchange.admin.switches()["closed_orders_by_client_order_id"] is False
    assert exchange.admin.switches()["history_range_limit_ms"] == 24 * HOUR_MS
    uid = user()
    with in_process_executor(postgres, exchange.url) as ex:
        ex.set_policy(uid)
        exchange.admin.drop_next_order(place=True)  # placed and filled; the answer lost
        execution = ex.execute(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")))
        assert execution.status == pb.EXECUTION_STATUS_UNKNOWN
        exchange.admin.advance_clock(30 * HOUR_MS)  # the reconciler only gets to it 30 h later

        before = exchange.admin.stats()["requests"]
        assert ex.reconcile(uid).changed == 1
        settled = ex.get(uid, execution.execution_id)
        assert settled.status == pb.EXECUTION_STATUS_FILLED
        assert settled.exchange_order_id == _orders_of(exchange, execution.client_order_id)[0]["orderId"]
        after = exchange.admin.stats()["requests"]
        # GET /order answered 240 (the order is closed); /orders and /trades were each searched in
        # windows of at most 24 h: 31 h from an hour before the deadline → 2 windows each.
        assert after.get("GET /orders", 0) - before.get("GET /orders", 0) == 2
        assert after.get("GET /trades", 0) - before.get("GET /trades", 0) == 2


def test_other_users_rows_of_unknown_shapes_are_skipped_and_an_unreadable_row_of_ours_is_audited(
    postgres: Postgres, exchange: Exchange
) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url) as ex:
        ex.set_policy(uid)
        exchange.admin.drop_next_order(place=True)
        ours = ex.execute(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")))
        assert ours.status == pb.EXECUTION_STATUS_UNKNOWN
        # another user of the shared account: unknown order types and statuses on the same market
        exchange.admin.add_foreign_history("BTC-EUR", count=40, order_type="trailingStop", status="pendingNew")

        exchange.admin.fail_next_order(109, place=False)
        pid = seed_proposal(postgres, uid, price=exchange.price("BTC-EUR"))
        unreadable = ex.execute(uid, pid)
        assert unreadable.status == pb.EXECUTION_STATUS_UNKNOWN
        # … and a row carrying this execution's clientOrderId that nobody can parse
        exchange.admin.add_foreign_history("BTC-EUR", count=1, client_order_id=client_order_id(uid, pid))
        exchange.admin.advance_clock(5 * 60_000)

        result = ex.reconcile(uid)  # no exception, whatever the rows
        assert result.examined == 2
        assert ex.get(uid, ours.execution_id).status == pb.EXECUTION_STATUS_FILLED
        stays = ex.get(uid, unreadable.execution_id)
        assert stays.status == pb.EXECUTION_STATUS_UNKNOWN  # never proven absent past a row of ours
        events = [e for e in ex.audit(uid, unreadable.execution_id) if e.kind == "execution.lookup_unreadable"]
        assert len(events) == 1
        detail = payload(events[0])
        assert detail["reason"] and detail["source"] in ("GET /orders", "GET /trades")
        assert detail["raw"]["clientOrderId"] == client_order_id(uid, pid)


def test_an_exchange_clock_30_s_ahead_orders_are_accepted_and_absence_is_proven_in_exchange_time(
    postgres: Postgres,
) -> None:
    uid = user()
    with (
        running_exchange(skew_ms=30_000) as exchange,
        in_process_executor(postgres, exchange.url) as ex,
    ):
        ex.set_policy(uid)
        filled = ex.execute(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")))
        assert filled.status == pb.EXECUTION_STATUS_FILLED  # signed with exchange time: accepted

        exchange.admin.fail_next_order(109, place=False)
        local_ms = time.time_ns() // 1_000_000
        lost = ex.execute(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")))
        assert lost.status == pb.EXECUTION_STATUS_UNKNOWN
        deadline_ms = next(r for r in executions(postgres, uid) if r["execution_id"] == lost.execution_id)[
            "sign_deadline_ms"
        ]
        assert deadline_ms - local_ms >= 30_000  # the deadline is in the exchange's time, not ours

        ex.reconcile(uid)  # 30 s "late" by the local clock, but not by the exchange's: no conclusion
        assert ex.get(uid, lost.execution_id).status == pb.EXECUTION_STATUS_UNKNOWN
        exchange.admin.advance_clock(deadline_ms + ABSENT_AFTER_DEADLINE_MS + 1_000 - exchange.admin.now_ms())
        ex.reconcile(uid)
        failed = ex.get(uid, lost.execution_id)
        assert failed.status == pb.EXECUTION_STATUS_FAILED and failed.error_code == "PROVEN_ABSENT"
        _no_failed_execution_has_an_order(postgres, exchange, uid)
        assert exchange.post_count() == 2


def test_a_fee_that_settles_after_the_answer_is_recorded_when_it_does(postgres: Postgres) -> None:
    uid = user()
    with (
        running_exchange(fee_settlement="deferred") as exchange,
        in_process_executor(postgres, exchange.url) as ex,
    ):
        ex.set_policy(uid)
        execution = ex.execute(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")))
        assert execution.status == pb.EXECUTION_STATUS_FILLED
        assert Decimal(execution.fee_paid) == 0
        [row] = executions(postgres, uid)
        assert row["fee_pending"] is True

        ex.reconcile(uid)  # not settled yet: still pending, nothing changes
        assert executions(postgres, uid)[0]["fee_pending"] is True

        assert exchange.admin.settle_fees(market="BTC-EUR", client_order_id=execution.client_order_id) > 0
        ex.reconcile(uid)
        [order] = _orders_of(exchange, execution.client_order_id)
        settled = ex.get(uid, execution.execution_id)
        assert settled.status == pb.EXECUTION_STATUS_FILLED
        assert Decimal(settled.fee_paid) == Decimal(order["feePaid"]) > 0
        assert executions(postgres, uid)[0]["fee_pending"] is False
        with postgres.admin() as conn:
            fees = conn.execute(
                "SELECT sum(fee) FROM oracle.trade_history WHERE execution_id = %s", (execution.execution_id,)
            ).fetchone()
        assert fees is not None and fees[0] == Decimal(order["feePaid"])
        kinds = [e.kind for e in ex.audit(uid, execution.execution_id)]
        assert kinds.count("execution.fee_settled") == 1
        assert ex.reconcile(uid).examined == 0  # nothing left to do for it


def test_the_reconcilers_exchange_weight_per_minute_is_bounded(postgres: Postgres, exchange: Exchange) -> None:
    budget = 30  # a lookup of a closed order costs 1 (GET /order) + 5 (/orders) + 5 (/trades)
    uid = user()
    with in_process_executor(postgres, exchange.url, reconcile_weight_per_minute=str(budget)) as ex:
        ex.set_policy(uid)
        for _ in range(6):
            exchange.admin.drop_next_order(place=True)
            assert (
                ex.execute(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR"))).status
                == pb.EXECUTION_STATUS_UNKNOWN
            )
        before = exchange.admin.stats()["requests"]
        first = ex.reconcile(uid)
        after = exchange.admin.stats()["requests"]
        spent = {
            k: after.get(k, 0) - before.get(k, 0) for k in ("GET /order", "GET /orders", "GET /trades", "GET /time")
        }
        weight = (
            spent["GET /order"] + spent["GET /time"] + HISTORY_WEIGHT * (spent["GET /orders"] + spent["GET /trades"])
        )
        assert 0 < weight <= budget, spent
        assert first.changed == 2 and first.unresolved == 4  # two lookups fit; the rest wait
        assert {r["status"] for r in executions(postgres, uid)} == {"FILLED", "UNKNOWN"}
