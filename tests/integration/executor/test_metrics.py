"""The executor's /metrics as an operator's Prometheus scrapes it, from a separate process: the
figures the alert rules (deploy/monitoring) read move when the events they watch happen."""

from __future__ import annotations

from pathlib import Path

from oracle.executor.v1 import executor_service_pb2 as pb

from tests.harness import Metrics, Postgres, eventually, scrape
from tests.integration.executor.kit import Exchange, Executor, process_executor, seed_proposal, user


def metrics_of(ex: Executor) -> Metrics:
    assert ex.metrics_port is not None
    return scrape(ex.metrics_port)


def test_a_lookup_failure_injected_at_the_exchange_moves_the_reconciler_failure_counter(
    postgres: Postgres, exchange: Exchange, tmp_path: Path
) -> None:
    uid = user()
    with process_executor(postgres, exchange.url, tmp_path / "executor.log") as (ex, _):
        ex.set_policy(uid)
        exchange.admin.drop_next_order(place=True)
        execution = ex.execute(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")))
        assert execution.status == pb.EXECUTION_STATUS_UNKNOWN

        # The stuck execution shows, read from the database at the scrape.
        stuck = metrics_of(ex)
        assert stuck.value("oracle_executor_executions_not_final", mode="live", status="UNKNOWN") >= 1
        assert stuck.value("oracle_executor_oldest_not_final_age_seconds", mode="live", status="UNKNOWN") >= 0
        failures = stuck.value("oracle_executor_reconciler_failures_total", stage="lookup")
        answered_107 = stuck.value("oracle_exchange_requests_total", code="107")

        # Every lookup of the order fails, however often the read is retried: the reconciler
        # changes nothing and counts the failure.
        exchange.admin.fail_next_request("/order", 107, count=1000)
        assert ex.reconcile(uid).unresolved == 1
        failed = metrics_of(ex)
        assert failed.value("oracle_executor_reconciler_failures_total", stage="lookup") == failures + 1
        assert failed.value("oracle_exchange_requests_total", code="107") >= answered_107 + 3
        filled_before = failed.value("oracle_executor_orders_final_total", status="FILLED")
        changes_before = failed.value("oracle_executor_reconciler_changes_total", status="FILLED")

        # The next pass finds the order: FILLED, counted as a reconciler change and a final order.
        exchange.admin.clear_faults()
        ex.reconcile(uid)
        assert ex.get(uid, execution.execution_id).status == pb.EXECUTION_STATUS_FILLED
        settled = metrics_of(ex)
        assert settled.value("oracle_executor_reconciler_changes_total", status="FILLED") == changes_before + 1
        assert settled.value("oracle_executor_orders_final_total", status="FILLED") == filled_before + 1
        assert settled.value("oracle_executor_reconciler_last_pass_timestamp_seconds") > 0


def test_the_kill_switches_and_a_ban_show_on_metrics(postgres: Postgres, exchange: Exchange, tmp_path: Path) -> None:
    uid = user()
    with process_executor(postgres, exchange.url, tmp_path / "executor.log") as (ex, _):
        ex.set_policy(uid)
        users_off = metrics_of(ex).value("oracle_executor_users_trading_off")
        ex.kill_switch(enabled=False, user_id=uid)
        ex.kill_switch(enabled=False)
        try:
            off = metrics_of(ex)
            assert off.value("oracle_executor_trading_enabled") == 0
            assert off.value("oracle_executor_users_trading_off") == users_off + 1
        finally:
            ex.kill_switch(enabled=True)
            ex.kill_switch(enabled=True, user_id=uid)
        assert metrics_of(ex).value("oracle_executor_trading_enabled") == 1

        bans = metrics_of(ex).value("oracle_exchange_bans_total")
        exchange.admin.exhaust_rate_limit(ip="127.0.0.1")  # the public reads (price) are weighed by IP
        ex.refused(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")))  # its reads meet the ban
        banned = metrics_of(ex)
        assert banned.value("oracle_exchange_bans_total") > bans
        assert banned.value("oracle_exchange_weight_remaining", limit="ip") == 0
        assert eventually(lambda: metrics_of(ex).value("oracle_service_ready", service="executor") == 1)
