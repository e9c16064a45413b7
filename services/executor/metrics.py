"""The executor's metrics: executions by outcome and reason, orders by final status, the
reconciler's passes, changes and failures, and the figures read from the database at each
scrape (executions not final and the oldest one's age; the kill switches).

Instruments live here and nowhere else; the flow, the state machine and the reconciler call the
one-line functions below. Labels are codes and statuses only (never a user or proposal id).
:func:`watch` is called once per built executor: it registers the database readings (through
the SECURITY DEFINER functions of migration 0091) and makes every counter's series exist at 0,
so the alert rules (deploy/monitoring) have a series to read before the first event.

The reconciler calls :func:`found_late` when it adopts an order found after its execution was
concluded FAILED, and :func:`reconciler_backoff` whenever it pushes an execution's next attempt
later (a failed lookup or handling, the found-late watch, a fee not settled yet).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from services.executor import operator_figures
from services.executor.reconciler_health import HEALTH
from shared.clock import Clock
from shared.db import Database
from shared.errors import InvariantBroken
from shared.exchange import instrumentation as exchange
from shared.metrics import LATENCY_BUCKETS, meter, observe

_meter = meter("executor")

EXECUTIONS = _meter.create_counter(
    "oracle_executor_executions",
    unit="{execution}",
    description="ExecuteProposal outcomes: claimed, or refused (duplicate, denied, rejected) by reason code",
)
ORDERS_FINAL = _meter.create_counter(
    "oracle_executor_orders_final", unit="{order}", description="Executions that reached a final status, by status"
)
RECONCILER_PASSES = _meter.create_counter(
    "oracle_executor_reconciler_passes", unit="{pass}", description="Reconciler passes completed"
)
RECONCILER_CHANGES = _meter.create_counter(
    "oracle_executor_reconciler_changes",
    unit="{execution}",
    description="Executions the reconciler moved, by the status it moved them to",
)
RECONCILER_FAILURES = _meter.create_counter(
    "oracle_executor_reconciler_failures",
    unit="{failure}",
    description="Reconciler failures: an exchange lookup that failed, database trouble, a pass that died",
)
RECONCILER_FOUND_LATE = _meter.create_counter(
    "oracle_executor_reconciler_found_late",
    unit="{order}",
    description="Orders found at the exchange after their execution was concluded FAILED, and adopted",
)
RECONCILER_BACKOFFS = _meter.create_counter(
    "oracle_executor_reconciler_backoffs", unit="{backoff}", description="Times the reconciler backed off"
)
RECONCILER_LAST_PASS = _meter.create_gauge(
    "oracle_executor_reconciler_last_pass_timestamp",
    unit="s",
    description="Unix time of the last completed reconciler pass",
)
RECONCILER_PASS_DURATION = _meter.create_histogram(
    "oracle_executor_reconciler_pass_duration",
    unit="s",
    description="Time one reconciler pass took",
    explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
)
NOT_FINAL = observe(
    _meter, "oracle_executor_executions_not_final", description="Executions whose outcome is not final, by status"
)
OLDEST_NOT_FINAL = observe(
    _meter,
    "oracle_executor_oldest_not_final_age",
    unit="s",
    description="How long the oldest execution of each non-final status has been in it",
)
TRADING_ENABLED = observe(
    _meter, "oracle_executor_trading_enabled", description="The global kill switch: 1 trading on, 0 off"
)
USERS_TRADING_OFF = observe(
    _meter, "oracle_executor_users_trading_off", description="Users whose own trading switch is off"
)

REFUSALS = ("duplicate", "denied", "rejected")
FAILURE_STAGES = ("lookup", "database", "pass")
MODES = ("live", "paper")


def claimed() -> None:
    """A proposal was claimed (its one order will follow)."""
    EXECUTIONS.add(1, {"outcome": "claimed", "reason": "CLAIMED"})


def refused(kind: str, reason: str) -> None:
    """An ExecuteProposal refused; ``kind`` is its audit kind (``execution.duplicate`` …)."""
    EXECUTIONS.add(1, {"outcome": kind.rpartition(".")[2], "reason": reason})


def final(status: str) -> None:
    """An execution reached the final ``status``."""
    ORDERS_FINAL.add(1, {"status": status})


def reconciler_pass(changed: Sequence[str], seconds: float) -> None:
    """A pass ended; ``changed`` are the statuses it moved executions to (also recorded in the
    process's reconciler health, services/executor/reconciler_health.py)."""
    RECONCILER_PASSES.add(1)
    RECONCILER_PASS_DURATION.record(seconds)
    for status in changed:
        RECONCILER_CHANGES.add(1, {"status": status})
    RECONCILER_LAST_PASS.set(time.time())
    HEALTH.passed(len(changed), seconds)


def reconciler_failure(stage: str) -> None:
    """Something the reconciler could not do: ``lookup``, ``database`` or the whole ``pass`` (also
    recorded in the process's reconciler health)."""
    RECONCILER_FAILURES.add(1, {"stage": stage})
    HEALTH.failed(stage)


def found_late() -> None:
    """An order found after its execution was concluded FAILED, adopted."""
    RECONCILER_FOUND_LATE.add(1)


def reconciler_backoff() -> None:
    """The reconciler backed an execution off (its next attempt pushed later)."""
    RECONCILER_BACKOFFS.add(1)


def watch(db: Database, clock: Clock) -> Callable[[], None]:
    """Read the database figures at each scrape and start every counter at 0; returns the
    shutdown hook that stops the readings."""
    for kind in REFUSALS:
        EXECUTIONS.add(0, {"outcome": kind, "reason": "NONE"})
    EXECUTIONS.add(0, {"outcome": "claimed", "reason": "CLAIMED"})
    from services.executor.state_machine import TERMINAL, TRANSITIONS  # it calls final(): no import cycle

    not_final_statuses = [s.value for s in TRANSITIONS if s not in TERMINAL]
    for status in TERMINAL:
        ORDERS_FINAL.add(0, {"status": status.value})
    for status in {target for targets in TRANSITIONS.values() for target in targets}:
        RECONCILER_CHANGES.add(0, {"status": status.value})
    for stage in FAILURE_STAGES:
        RECONCILER_FAILURES.add(0, {"stage": stage})
    RECONCILER_PASSES.add(0)
    RECONCILER_FOUND_LATE.add(0)
    RECONCILER_BACKOFFS.add(0)
    exchange.start()

    def not_final() -> dict[tuple[str, str], tuple[int, float]]:
        """(mode, status) -> (count, age of the oldest); every non-final status, 0 when none."""
        now = clock.now()
        figures = {(mode, status): (0, 0.0) for mode in MODES for status in not_final_statuses}
        for r in operator_figures.not_final(db):
            figures[(r.mode, r.status)] = (r.executions, (now - r.oldest_updated_at).total_seconds())
        return figures

    def counts() -> list[tuple[float, dict[str, str]]]:
        return [(float(n), {"mode": m, "status": s}) for (m, s), (n, _) in not_final().items()]

    def oldest() -> list[tuple[float, dict[str, str]]]:
        return [(max(age, 0.0), {"mode": m, "status": s}) for (m, s), (_, age) in not_final().items()]

    def switches() -> tuple[list[tuple[float, dict[str, str]]], list[tuple[float, dict[str, str]]]]:
        with db.transaction(None) as conn:
            row = conn.execute("SELECT * FROM oracle.kill_switch_state()").fetchone()
        if row is None:
            raise InvariantBroken("oracle.kill_switch_state returned no row")
        return [(1.0 if row["global_enabled"] else 0.0, {})], [(float(row["users_off"]), {})]

    removers = [
        NOT_FINAL.add(counts),
        OLDEST_NOT_FINAL.add(oldest),
        TRADING_ENABLED.add(lambda: switches()[0]),
        USERS_TRADING_OFF.add(lambda: switches()[1]),
    ]

    def stop() -> None:
        for remove in removers:
            remove()

    return stop
