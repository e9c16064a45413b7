"""Builds the executor from its settings: the venue (live exchange or paper), the ExecuteProposal
flow, the policy book, the reconciler thread and the servicer.

``build`` is what ``shared.bootstrap.run_main`` calls; tests call it too, with a clock (the database's,
frozen: tests/support/database_clock.py), a venue or test hooks of their own, and serve the bindings with ``shared.bootstrap.start_service``.
A live executor whose key cannot trade (or whose exchange cannot be reached to prove it) refuses
to start with :class:`shared.bootstrap.StartupRefused` (exit code :data:`EXIT_VENUE_REFUSED`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta

from oracle.executor.v1 import executor_service_pb2 as pb
from oracle.executor.v1 import executor_service_pb2_grpc as pb_grpc

from services.executor import metrics
from services.executor.balances import Balances
from services.executor.breaker import Marks
from services.executor.config import ExecutorSettings, Mode
from services.executor.execution import Executor, Hooks
from services.executor.money import MoneyView
from services.executor.operator_figures import OperatorFigures
from services.executor.paper import PaperVenue
from services.executor.policies import PolicyBook
from services.executor.reconciler import Reconciler, ReconcilerThread, Timing
from services.executor.servicer import ExecutorServicer
from services.executor.trade_client import TradeClient
from services.executor.venue import LiveVenue, Markets, Venue
from shared.bootstrap import StartupRefused
from shared.clock import Clock, SystemClock
from shared.db import Database
from shared.errors import InvariantBroken
from shared.exchange.errors import ExchangeError
from shared.exchange.public import PublicMarketData
from shared.exchange.sdk import ApiCredentials, ExchangeSettings
from shared.server import ServiceBinding

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ExecutorService"].full_name
_SYSTEM_CLOCK = SystemClock()
CONNECT_TIMEOUT_SECONDS = 3.0
# Exit code of an executor whose venue fails its startup check (the code it always had).
EXIT_VENUE_REFUSED = 2


def exchange_settings(settings: ExecutorSettings) -> ExchangeSettings:
    """How the exchange clients reach Bitvavo (or the simulator)."""
    return ExchangeSettings(
        rest_url=settings.exchange_url,
        connect_timeout_s=min(CONNECT_TIMEOUT_SECONDS, settings.request_timeout_seconds),
        read_timeout_s=settings.request_timeout_seconds,
        access_window_ms=settings.access_window_ms,
    )


def create_venue(settings: ExecutorSettings, db: Database, clock: Clock) -> Venue:
    """The live exchange (trade key) or the paper venue (no key), as the mode says."""
    exchange = exchange_settings(settings)
    markets = Markets(PublicMarketData(exchange), settings.market_cache_seconds)
    if settings.mode is Mode.PAPER:
        return PaperVenue(
            markets,
            db,
            clock,
            balance_eur=settings.paper_balance_eur,
            fee_rate=settings.paper_fee_rate,
            price_max_age_seconds=settings.paper_price_max_age_seconds,
        )
    key, secret, operator_id = settings.bitvavo_api_key, settings.bitvavo_api_secret, settings.operator_id
    if key is None or secret is None or operator_id is None:
        raise InvariantBroken("live mode without API key, secret or operator id (the settings require all three)")
    credentials = ApiCredentials(key.get_secret_value(), secret.get_secret_value())
    trade = TradeClient(credentials, operator_id=operator_id, settings=exchange)
    return LiveVenue(markets, trade)


def announce_mode(settings: ExecutorSettings) -> None:
    """Say loudly, at startup, whether money moves."""
    if settings.mode is Mode.LIVE:
        text = (
            f"EXECUTOR MODE: LIVE - real orders are sent to {settings.exchange_url} "
            f"with operatorId {settings.operator_id}"
        )
    else:
        text = "EXECUTOR MODE: PAPER - no order is ever sent; fills are simulated at the public price"
    for _ in range(3):
        log.warning(text, extra={"event": "mode", "mode": settings.mode.value})


def build(
    settings: ExecutorSettings,
    db: Database,
    clock: Clock = _SYSTEM_CLOCK,
    *,
    venue: Venue | None = None,
    hooks: Hooks | None = None,
) -> tuple[Sequence[ServiceBinding], Sequence[Callable[[], None]]]:
    """The bindings to serve, and the shutdown hooks of the started reconciler thread.

    ``hooks`` are the Executor's test seams (tests/support/executor_with_hooks.py); production
    passes none."""
    announce_mode(settings)
    venue = venue or create_venue(settings, db, clock)
    try:
        venue.verify()
    except ExchangeError as exc:
        raise StartupRefused(
            f"{venue.mode} venue check failed: {type(exc).__name__}: {exc}", exit_code=EXIT_VENUE_REFUSED
        ) from exc
    marks = Marks(venue.price, ttl_seconds=settings.marks_cache_seconds)
    executor = Executor(
        db,
        venue,
        clock,
        send_within=timedelta(seconds=settings.request_timeout_seconds),
        hooks=hooks,
        marks=marks,
        # paper balances are the database's own figures: nothing to save by reusing them
        balances=Balances(
            venue.free_balance, max_age_seconds=settings.balance_cache_seconds if venue.mode == Mode.LIVE else 0
        ),
    )
    timing = Timing(
        request_timeout=timedelta(seconds=CONNECT_TIMEOUT_SECONDS + settings.request_timeout_seconds),
        access_window=timedelta(milliseconds=settings.access_window_ms),
        safety_margin=timedelta(seconds=settings.reconcile_safety_margin_seconds),
        stale_claimed=timedelta(seconds=settings.stale_claimed_seconds),
        batch=settings.reconcile_batch,
        found_late_watch=timedelta(hours=settings.found_late_watch_hours),
        backoff=timedelta(seconds=settings.reconcile_backoff_seconds),
        backoff_max=timedelta(seconds=settings.reconcile_backoff_max_seconds),
        weight_per_minute=settings.reconcile_weight_per_minute,
    )
    reconciler = Reconciler(db, venue, clock, timing)
    policies = PolicyBook(
        db,
        clock,
        known_markets=lambda: _known_markets(venue),
    )
    servicer = ExecutorServicer(
        db,
        executor,
        reconciler,
        policies,
        MoneyView(db, venue, clock, marks),
        clock=clock,
        mode=venue.mode,
        figures=OperatorFigures(db, venue, clock),
    )
    thread = ReconcilerThread(reconciler, timedelta(seconds=settings.reconcile_interval_seconds))
    thread.start()
    binding = ServiceBinding(
        SERVICE_NAME, lambda server: pb_grpc.add_ExecutorServiceServicer_to_server(servicer, server)
    )
    return [binding], [thread.stop, metrics.watch(db, clock)]


def _known_markets(venue: Venue) -> frozenset[str] | None:
    """The exchange's markets, or None when it cannot be asked now (then only formats are checked)."""
    try:
        return venue.market_names()
    except ExchangeError as exc:
        log.warning("market list unavailable for policy validation: %s", type(exc).__name__)
        return None
