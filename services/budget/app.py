"""Builds the budget service from its settings: the ledger, the servicer and the expiry sweeper.

``build`` is what ``shared.bootstrap.run_main`` calls; tests call it too, with a ManualClock, and
serve the bindings with ``shared.bootstrap.start_service``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta

from oracle.budget.v1 import budget_service_pb2 as pb
from oracle.budget.v1 import budget_service_pb2_grpc as pb_grpc

from services.budget.config import BudgetSettings
from services.budget.ledger import Ledger, LedgerPolicy
from services.budget.servicer import BudgetServicer
from services.budget.sweeper import ExpirySweeper
from shared.clock import Clock, SystemClock
from shared.db import Database
from shared.server import ServiceBinding

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["BudgetService"].full_name
_SYSTEM_CLOCK = SystemClock()


def create_ledger(settings: BudgetSettings, db: Database, clock: Clock) -> Ledger:
    """The ledger with the configured limits, prices and TTL."""
    if settings.test_reserve_delay_ms:
        log.warning(
            "BUDGET_TEST_RESERVE_DELAY_MS is set: every granted reservation holds the user's lock "
            "longer. This knob exists for concurrency tests only; never set it in production.",
            extra={"test_reserve_delay_ms": settings.test_reserve_delay_ms},
        )
    policy = LedgerPolicy(
        default_limits=settings.default_limits(),
        prices=settings.price_table(),
        reservation_ttl=timedelta(seconds=settings.reservation_ttl_seconds),
        max_tokens_per_call=settings.max_tokens_per_call,
        reserve_delay=timedelta(milliseconds=settings.test_reserve_delay_ms),
    )
    return Ledger(db, clock, policy)


def build(
    settings: BudgetSettings, db: Database, clock: Clock = _SYSTEM_CLOCK
) -> tuple[Sequence[ServiceBinding], Sequence[Callable[[], None]]]:
    """The service bindings to serve, and the shutdown hooks of the started expiry sweeper."""
    ledger = create_ledger(settings, db, clock)
    servicer = BudgetServicer(ledger)
    sweeper = ExpirySweeper(ledger, settings.sweep_interval_seconds)
    sweeper.start()
    binding = ServiceBinding(SERVICE_NAME, lambda server: pb_grpc.add_BudgetServiceServicer_to_server(servicer, server))
    return [binding], [sweeper.stop]
