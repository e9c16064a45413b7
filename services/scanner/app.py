"""Builds the scanner from its settings: the servicer, the scheduler and heartbeat threads, and
the proposal expiry sweeper.

``build`` is what ``shared.bootstrap.run_main`` calls. It first proves that the configured
exchange key cannot trade (``ReadonlyAccount``; a key that can, or a probe that cannot tell,
stops the start). ``assemble`` wires the parts without starting anything, for tests that drive a
scheduler turn by turn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import openai
from oracle.scanner.v1 import scanner_service_pb2 as pb
from oracle.scanner.v1 import scanner_service_pb2_grpc as pb_grpc

from services.scanner import metrics
from services.scanner.account import ReadonlyAccount
from services.scanner.analyst import Analyst, RuleAnalyst
from services.scanner.budget_client import BudgetClient
from services.scanner.config import ScannerSettings
from services.scanner.executor_client import ExecutorClient, NoExecutor
from services.scanner.jobs import ScanJobs
from services.scanner.lease import Heartbeat, Leases
from services.scanner.llm_analyst import LlmAnalyst
from services.scanner.market_data import MarketData
from services.scanner.proposals import ExpirySweeper, Proposals
from services.scanner.scan import Backoff, ScanRunner
from services.scanner.scheduler import Scheduler
from services.scanner.servicer import ScannerServicer
from shared.bootstrap import StartupRefused
from shared.channel import token_file_or
from shared.clock import Clock, SystemClock
from shared.db import Database
from shared.exchange.errors import ExchangeError, TradeCapableKeyError
from shared.exchange.public import PublicMarketData
from shared.exchange.sdk import ApiCredentials, ExchangeSettings
from shared.server import ServiceBinding
from shared.tls import service_tls

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ScannerService"].full_name
_SYSTEM_CLOCK = SystemClock()


@dataclass
class Scanner:
    """Every part of one scanner instance, wired, nothing started."""

    settings: ScannerSettings
    leases: Leases
    heartbeat: Heartbeat
    market_data: MarketData
    runner: ScanRunner
    jobs: ScanJobs
    proposals: Proposals
    scheduler: Scheduler
    sweeper: ExpirySweeper
    servicer: ScannerServicer
    closers: list[Callable[[], None]]


# Exit code of a scanner whose exchange key can trade, or cannot be proven not to.
EXIT_KEY_NOT_READONLY = 3


def exchange_settings(settings: ScannerSettings) -> ExchangeSettings:
    return ExchangeSettings(rest_url=settings.exchange_url, read_timeout_s=settings.exchange_timeout_seconds)


def verify_readonly_key(settings: ScannerSettings) -> None:
    """StartupRefused (exit :data:`EXIT_KEY_NOT_READONLY`) unless the key is view-only: a key
    that can trade, or one whose permissions the probe could not establish."""
    if settings.bitvavo_api_key is None or settings.bitvavo_api_secret is None:
        log.info("no Bitvavo key configured: public market data only")
        return
    credentials = ApiCredentials(
        settings.bitvavo_api_key.get_secret_value(), settings.bitvavo_api_secret.get_secret_value()
    )
    try:
        ReadonlyAccount(credentials, exchange_settings(settings))
    except TradeCapableKeyError as exc:
        raise StartupRefused(
            "SCANNER_BITVAVO_API_KEY can trade; give it a view-only key", exit_code=EXIT_KEY_NOT_READONLY
        ) from exc
    except ExchangeError as exc:
        raise StartupRefused(
            f"cannot prove SCANNER_BITVAVO_API_KEY is view-only ({type(exc).__name__})",
            exit_code=EXIT_KEY_NOT_READONLY,
        ) from exc


def assemble(
    settings: ScannerSettings,
    db: Database,
    clock: Clock = _SYSTEM_CLOCK,
    *,
    analysts: Mapping[str, Analyst] | None = None,
) -> Scanner:
    """Wire a scanner; ``analysts`` replaces the configured ones (tests)."""
    closers: list[Callable[[], None]] = []
    market_data = MarketData(
        PublicMarketData(exchange_settings(settings)),
        clock,
        candle_interval=settings.candle_interval,
        candle_count=settings.candle_count,
        ttl_seconds=settings.market_data_ttl_seconds,
        reserve=settings.rate_limit_reserve,
    )
    if analysts is None:
        analysts = configured_analysts(settings, closers)
    executor: ExecutorClient | NoExecutor = NoExecutor()
    if settings.executor_addr:
        executor = ExecutorClient(
            settings.executor_addr,
            token_file_or(settings.executor_token_file, settings.executor_token.get_secret_value()),
            timeout_seconds=settings.executor_timeout_seconds,
            tls=service_tls(settings),
        )
        closers.append(executor.close)
    leases = Leases(db, instance=settings.instance_id, lease_seconds=settings.lease_seconds)
    heartbeat = Heartbeat(leases, settings.heartbeat_interval_seconds)
    runner = ScanRunner(
        db=db,
        clock=clock,
        fence=leases.fence,
        market_data=market_data,
        analysts=analysts,
        executor=executor,
        proposal_ttl=timedelta(seconds=settings.proposal_ttl_seconds),
        backoff=Backoff(settings.backoff_base_seconds, settings.backoff_max_seconds),
        instance=settings.instance_id,
    )
    jobs = ScanJobs(db)
    proposals = Proposals(db)
    scheduler = Scheduler(
        leases=leases,
        heartbeat=heartbeat,
        runner=runner,
        jobs=jobs,
        batch_size=settings.claim_batch_size,
        concurrency=settings.job_concurrency,
        poll_interval_seconds=settings.poll_interval_seconds,
    )
    servicer = ScannerServicer(
        jobs=jobs,
        proposals=proposals,
        runner=runner,
        scheduler=scheduler,
        default_analyst=settings.default_analyst.value,
    )
    return Scanner(
        settings=settings,
        leases=leases,
        heartbeat=heartbeat,
        market_data=market_data,
        runner=runner,
        jobs=jobs,
        proposals=proposals,
        scheduler=scheduler,
        sweeper=ExpirySweeper(proposals, settings.expiry_interval_seconds),
        servicer=servicer,
        closers=closers,
    )


def configured_analysts(settings: ScannerSettings, closers: list[Callable[[], None]]) -> dict[str, Analyst]:
    """The rule analyst always; the LLM analyst when an LLM endpoint and the budget service are set."""
    analysts: dict[str, Analyst] = {"rules": RuleAnalyst()}
    if not settings.llm_base_url:
        return analysts
    if not settings.budget_addr:
        log.warning("SCANNER_LLM_BASE_URL is set but SCANNER_BUDGET_ADDR is not: the LLM analyst is off")
        return analysts
    budget = BudgetClient(
        settings.budget_addr,
        token_file_or(settings.budget_token_file, settings.budget_token.get_secret_value()),
        timeout_seconds=settings.budget_timeout_seconds,
        tls=service_tls(settings),
    )
    client = openai.OpenAI(
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key.get_secret_value() or "unset",
        timeout=settings.llm_timeout_seconds,
        max_retries=0,
    )
    closers.extend([budget.close, client.close])
    analysts["llm"] = LlmAnalyst(client, budget, model=settings.llm_model, max_tokens=settings.llm_max_tokens)
    return analysts


def build(
    settings: ScannerSettings,
    db: Database,
    clock: Clock = _SYSTEM_CLOCK,
    *,
    analysts: Mapping[str, Analyst] | None = None,
) -> tuple[Sequence[ServiceBinding], Sequence[Callable[[], None]]]:
    """The service binding, and the shutdown hooks of the started threads (run in reverse order)."""
    verify_readonly_key(settings)
    scanner = assemble(settings, db, clock, analysts=analysts)
    metrics.start(settings.llm_model)
    scanner.heartbeat.start()
    scanner.sweeper.start()
    if settings.scheduler_enabled:
        scanner.scheduler.start()
    else:
        log.info("scheduler off (SCANNER_SCHEDULER_ENABLED=false): RPCs only")
    servicer = scanner.servicer
    binding = ServiceBinding(
        SERVICE_NAME, lambda server: pb_grpc.add_ScannerServiceServicer_to_server(servicer, server)
    )
    # shutdown runs hooks last-first: stop claiming, then the sweeper and heartbeat, then clients
    return [binding], [*scanner.closers, scanner.heartbeat.stop, scanner.sweeper.stop, scanner.scheduler.stop]
