"""Builds the budget service from its settings: the ledger, the servicer and the expiry sweeper.

``build`` is what ``shared.bootstrap.run_main`` calls; tests call it too, and serve the bindings with ``shared.bootstrap.start_service``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta

from oracle.budget.v1 import budget_service_pb2 as pb
from oracle.budget.v1 import budget_service_pb2_grpc as pb_grpc

from services.budget import metrics
from services.budget.config import BudgetSettings
from services.budget.ledger import Hooks, Ledger, LedgerPolicy
from services.budget.servicer import BudgetServicer
from services.budget.sweeper import ExpirySweeper
from shared.db import Database
from shared.server import ServiceBinding

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["BudgetService"].full_name


def create_ledger(settings: BudgetSettings, db: Database, hooks: Hooks | None = None) -> Ledger:
    """The ledger with the configured limits, prices and TTL."""
    policy = LedgerPolicy(
        default_limits=settings.default_limits(),
        prices=settings.price_table(),
        reservation_ttl=timedelta(seconds=settings.reservation_ttl_seconds),
        max_tokens_per_call=settings.max_tokens_per_call,
    )
    return Ledger(db, policy, hooks)


def build(
    settings: BudgetSettings, db: Database, hooks: Hooks | None = None
) -> tuple[Sequence[ServiceBinding], Sequence[Callable[[], None]]]:
    """The service bindings to serve, and the shutdown hooks of the started expiry sweeper.

    ``hooks`` are the Ledger's test seams (tests/support/budget_with_hooks.py); production
    passes none.
    """
    ledger = create_ledger(settings, db, hooks)
    metrics.start()
    servicer = BudgetServicer(ledger)
    sweeper = ExpirySweeper(ledger, settings.sweep_interval_seconds)
    sweeper.start()
    binding = ServiceBinding(SERVICE_NAME, lambda server: pb_grpc.add_BudgetServiceServicer_to_server(servicer, server))
    return [binding], [sweeper.stop]
