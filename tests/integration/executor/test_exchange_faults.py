"""Lost answers, refusals and unreachable exchanges: POST /order is never sent twice, every
outcome is settled by looking the order up by its clientOrderId, and orders are counted at the
simulator."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from oracle.executor.v1 import executor_service_pb2 as pb

from services.executor.execution import Hooks, client_order_id
from services.executor.model import Execution, Lookup, MarketInfo
from services.executor.venue import Venue
from shared.exchange.orders import OrderStatus
from tests.harness import Postgres, eventually
from tests.integration.executor.kit import (
    Exchange,
    VenueProxy,
    executions,
    fills,
    in_process_executor,
    payload,
    seed_proposal,
    storm,
    trade_client,
    user,
)


def _one_order(exchange: Exchange, execution: pb.Execution) -> None:
    orders = exchange.orders()
    assert len(orders) == 1
    assert exchange.post_count() == 1
    assert orders[0]["clientOrderId"] == execution.client_order_id


def test_a_dropped_answer_is_unknown_until_reconciled_by_client_order_id(
    postgres: Postgres, exchange: Exchange
) -> None:
    uid = user()
    with (
        in_process_executor(postgres, exchange.url) as ex,
        in_process_executor(postgres, exchange.url) as other,
    ):
        ex.set_policy(uid)
        exchange.admin.drop_next_order(place=True)
        execution = ex.execute(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")))
        assert execution.status == pb.EXECUTION_STATUS_UNKNOWN
        assert execution.exchange_order_id == ""

        # Two executor instances reconcile at once: compare-and-set lets exactly one move it.
        results = storm([lambda: ex.reconcile(uid), lambda: other.reconcile(uid)])
        assert sum(r.changed for r in results) == 1

        settled = ex.get(uid, execution.execution_id)
        assert settled.status == pb.EXECUTION_STATUS_FILLED
        assert settled.exchange_order_id == exchange.orders()[0]["orderId"]
        assert Decimal(settled.filled_amount) > 0
        _one_order(exchange, execution)
        assert len(fills(postgres, uid)) == len(exchange.orders()[0]["fills"])
        transitions = [e for e in ex.audit(uid, execution.execution_id) if e.kind == "execution.transition"]
        assert [(payload(t)["from"], payload(t)["to"]) for t in transitions] == [
            ("CLAIMED", "SUBMITTING"),
            ("SUBMITTING", "UNKNOWN"),
            ("UNKNOWN", "FILLED"),
        ]


def test_the_reconciler_timer_settles_unknown_executions_by_itself(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url, reconcile_interval_seconds="0.2") as ex:
        ex.set_policy(uid)
        exchange.admin.drop_next_order(place=True)
        execution = ex.execute(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")))
        assert execution.status == pb.EXECUTION_STATUS_UNKNOWN
        assert eventually(lambda: ex.get(uid, execution.execution_id).status == pb.EXECUTION_STATUS_FILLED)
        _one_order(exchange, execution)


def test_101_and_109_after_placing_are_unknown_then_filled(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url) as ex:
        ex.set_policy(uid)
        for code in (101, 109):
            exchange.admin.fail_next_order(code, place=True)
            execution = ex.execute(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")))
            assert execution.status == pb.EXECUTION_STATUS_UNKNOWN
            assert execution.error_code == str(code)
        assert ex.reconcile(uid).changed == 2
        statuses = {e["status"] for e in executions(postgres, uid)}
        assert statuses == {"FILLED"}
        assert exchange.post_count() == 2
        assert exchange.order_count() == 2


def test_an_answer_that_never_comes_is_unknown_then_filled(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url, request_timeout_seconds="1") as ex:
        ex.set_policy(uid)
        exchange.admin.hang_next_order(seconds=60, place=True)  # far past the 1 s timeout: it gives up first
        execution = ex.execute(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")))
        assert execution.status == pb.EXECUTION_STATUS_UNKNOWN
        ex.reconcile(uid)
        assert ex.get(uid, execution.execution_id).status == pb.EXECUTION_STATUS_FILLED
        _one_order(exchange, execution)


def test_an_order_that_never_arrived_is_failed_only_after_the_access_window(
    postgres: Postgres, exchange: Exchange
) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url) as ex:
        ex.set_policy(uid)
        exchange.admin.fail_next_order(109, place=False)  # 109 without placing: "may or may not"
        execution = ex.execute(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")))
        assert execution.status == pb.EXECUTION_STATUS_UNKNOWN

        # lookups answer "not found", but exchange time is not past deadline + window + margin yet
        assert ex.reconcile(uid).unresolved == 1
        assert ex.get(uid, execution.execution_id).status == pb.EXECUTION_STATUS_UNKNOWN

        exchange.admin.fail_next_request("/order", 107, count=3)  # the lookup itself fails: proves nothing
        exchange.admin.advance_clock(5 * 60_000)  # the exchange's clock is 5 minutes on
        ex.reconcile(uid)
        assert ex.get(uid, execution.execution_id).status == pb.EXECUTION_STATUS_UNKNOWN

        ex.reconcile(uid)  # every lookup answers cleanly, well after deadline + access window + margin
        failed = ex.get(uid, execution.execution_id)
        assert failed.status == pb.EXECUTION_STATUS_FAILED
        assert failed.error_code == "PROVEN_ABSENT"
        assert exchange.order_count() == 0
        assert exchange.post_count() == 1


class _SlowLookups(VenueProxy):
    """Once armed, every lookup takes ``took_ms`` of the exchange's time (read retries, a stalled
    process) before it answers."""

    def __init__(self, inner: Venue, exchange: Exchange, took_ms: int) -> None:
        super().__init__(inner)
        self.exchange = exchange
        self.took_ms = took_ms
        self.armed = False

    def find(self, *, market: str, client_order_id: str, since_ms: int, max_weight: int | None) -> Lookup:
        found = self.inner.find(
            market=market, client_order_id=client_order_id, since_ms=since_ms, max_weight=max_weight
        )
        if self.armed:
            self.exchange.admin.advance_clock(self.took_ms)
        return found


# The test's timings: access window 1 s + safety margin 30 s after the signing deadline.
ABSENT_AFTER_DEADLINE_MS = 31_000


def test_not_found_proves_absence_only_as_of_when_the_lookups_started(postgres: Postgres, exchange: Exchange) -> None:
    venues: list[_SlowLookups] = []

    def slow(inner: Venue) -> Venue:
        venues.append(_SlowLookups(inner, exchange, took_ms=60_000))
        return venues[-1]

    uid = user()
    with in_process_executor(postgres, exchange.url, venue=slow, reconcile_safety_margin_seconds="30") as ex:
        ex.set_policy(uid)
        exchange.admin.fail_next_order(109, place=False)  # never placed, answer "may or may not"
        execution = ex.execute(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")))
        assert execution.status == pb.EXECUTION_STATUS_UNKNOWN
        deadline_ms = executions(postgres, uid)[0]["sign_deadline_ms"]

        # The lookups start (exchange time) 15 s before deadline + window + margin and answer "not
        # found" 45 s after it: the evidence is as old as their start, so it proves nothing yet.
        exchange.admin.advance_clock(deadline_ms + ABSENT_AFTER_DEADLINE_MS - 15_000 - exchange.admin.now_ms())
        venues[0].armed = True
        assert ex.reconcile(uid).unresolved == 1
        assert ex.get(uid, execution.execution_id).status == pb.EXECUTION_STATUS_UNKNOWN
        assert exchange.admin.now_ms() > deadline_ms + ABSENT_AFTER_DEADLINE_MS

        venues[0].armed = False  # lookups that start after it do prove absence
        ex.reconcile(uid)
        failed = ex.get(uid, execution.execution_id)
        assert failed.status == pb.EXECUTION_STATUS_FAILED
        assert failed.error_code == "PROVEN_ABSENT"
        assert exchange.order_count() == 0


def test_a_client_order_id_conflict_is_unknown_and_reconciled_to_the_open_order(
    postgres: Postgres, exchange: Exchange
) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url) as ex:
        ex.set_policy(uid)
        pid = seed_proposal(postgres, uid, price=exchange.price("BTC-EUR"))
        cid = client_order_id(uid, pid)
        # An OPEN order already holds the proposal's clientOrderId on the account (placed with
        # the executor's trade key; far below the market, so it rests).
        resting = trade_client(exchange.url).place_order(
            "BTC-EUR", "buy", "limit", cid, amount=Decimal("0.01"), price=Decimal("1000")
        )
        assert resting.status is OrderStatus.NEW

        execution = ex.execute(uid, pid)  # POST /order answers 220: that order is live, not absent
        assert execution.status == pb.EXECUTION_STATUS_UNKNOWN
        assert execution.error_code == "220"

        assert ex.reconcile(uid).changed == 1
        settled = ex.get(uid, execution.execution_id)
        assert settled.status == pb.EXECUTION_STATUS_SUBMITTED
        assert settled.exchange_order_id == resting.order_id
        assert [o["orderId"] for o in exchange.orders() if o.get("clientOrderId") == cid] == [resting.order_id]
        assert exchange.post_count() == 2  # the resting order, and the one refused with 220


def test_a_refused_connection_fails_without_an_order(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()

    def exchange_goes_down(_: Execution) -> None:
        exchange.sim.stop()

    with in_process_executor(postgres, exchange.url, hooks=Hooks(before_send=exchange_goes_down)) as ex:
        ex.set_policy(uid)
        try:
            execution = ex.execute(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")))
        finally:
            exchange.sim.start()
        assert execution.status == pb.EXECUTION_STATUS_FAILED
        assert execution.error_code == "NotSentError"
        ex.reconcile(uid)
        assert exchange.post_count() == 0
        assert exchange.order_count() == 0


def test_insufficient_balance_at_the_exchange_fails_with_its_code(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()

    def balance_spent_elsewhere(_: Execution) -> None:
        exchange.admin.set_balance("EUR", "0")

    with in_process_executor(postgres, exchange.url, hooks=Hooks(before_send=balance_spent_elsewhere)) as ex:
        ex.set_policy(uid)
        execution = ex.execute(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")))
        assert execution.status == pb.EXECUTION_STATUS_FAILED
        assert execution.error_code == "216"
        ex.reconcile(uid)
        assert ex.get(uid, execution.execution_id).status == pb.EXECUTION_STATUS_FAILED
        assert exchange.post_count() == 1
        assert exchange.order_count() == 0


class _StaleMinimum(VenueProxy):
    """The exchange's market rules as a stale cache would have them: a 1 EUR minimum."""

    def market(self, market: str) -> MarketInfo | None:
        info = self.inner.market(market)
        return None if info is None else replace(info, min_order_quote=Decimal(1), min_order_base=Decimal(0))


def test_an_order_below_the_exchange_minimum_fails_with_its_code(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url, venue=_StaleMinimum) as ex:
        ex.set_policy(uid, min_order_eur="1")
        execution = ex.execute(uid, seed_proposal(postgres, uid, amount="3.00", price=exchange.price("BTC-EUR")))
        assert execution.status == pb.EXECUTION_STATUS_FAILED
        assert execution.error_code == "217"
        assert exchange.post_count() == 1
        assert exchange.order_count() == 0
