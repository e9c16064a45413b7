"""What the scanner tests stand on: the real Bitvavo and LLM simulators, scanners built exactly as
``python -m services.scanner`` builds them (``services.scanner.app``), only with an injected clock
or analysts, and the database read back as the superuser — counts are taken at the simulators
and in the audit trail, never from the scanner's own answers.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import grpc
from oracle.scanner.v1 import scanner_service_pb2 as pb
from oracle.scanner.v1 import scanner_service_pb2_grpc as pb_grpc

from services.scanner.analyst import AnalysisRequest, Analyst, Decision
from services.scanner.app import Scanner, assemble, build
from services.scanner.config import ScannerSettings, load_settings
from shared.bootstrap import open_database, start_service
from shared.clock import Clock, SystemClock
from sim.bitvavo import BitvavoSimulator, SimulatorAdmin
from sim.llm import LlmSimulator, LlmSimulatorAdmin
from tests.harness import OPERATOR_TOKEN, PRINCIPAL_TOKENS, SCANNER_TOKEN, Postgres, channel

MARKETS = ("BTC-EUR", "ETH-EUR", "SOL-EUR", "XRP-EUR", "ADA-EUR")


# ------------------------------------------------------------------------------ simulators
@dataclass
class Exchange:
    """A running exchange simulator and its admin client."""

    sim: BitvavoSimulator
    admin: SimulatorAdmin
    url: str

    def trend_up(self, market: str, pct: int = 10) -> Decimal:
        """A new candle ``pct`` % above the last: the market trends up (analysts say buy). The
        exchange clock moves on a minute first, so the history before stays as it was."""
        self.admin.advance_clock(60_000)
        price = self.admin.prices()[market] * (100 + pct) / 100
        self.admin.set_price(market, price)
        return price

    def count(self, path: str) -> int:
        return self.admin.request_count(path)


@contextmanager
def running_exchange() -> Iterator[Exchange]:
    sim = BitvavoSimulator(seed=11)
    url = sim.start()
    admin = SimulatorAdmin(url)
    admin.set_balance("EUR", "100000")
    try:
        yield Exchange(sim, admin, url)
    finally:
        admin.close()
        sim.stop()


@dataclass
class Llm:
    """A running LLM simulator and its admin client."""

    sim: LlmSimulator
    admin: LlmSimulatorAdmin
    url: str


@contextmanager
def running_llm() -> Iterator[Llm]:
    sim = LlmSimulator()
    url = sim.start()
    try:
        yield Llm(sim, LlmSimulatorAdmin(url), url)
    finally:
        sim.stop()


# ------------------------------------------------------------------------------ scanners
def scanner_env(postgres: Postgres, exchange_url: str, **overrides: str) -> dict[str, str]:
    """The scanner's environment for tests; ``overrides`` by field name (no prefix)."""
    env = {
        "SCANNER_DATABASE_URL": postgres.url("scanner"),
        "SCANNER_PRINCIPAL_TOKENS": PRINCIPAL_TOKENS,
        "SCANNER_EXCHANGE_URL": exchange_url,
        "SCANNER_EXCHANGE_TIMEOUT_SECONDS": "5",
        "SCANNER_DB_HEALTH_INTERVAL_SECONDS": "5",
        "SCANNER_DB_POOL_MAX": "8",
        "SCANNER_SCHEDULER_ENABLED": "false",
        "SCANNER_EXPIRY_INTERVAL_SECONDS": "3600",
        "SCANNER_CANDLE_INTERVAL": "1m",
        "SCANNER_CANDLE_COUNT": "30",
        "SCANNER_LEASE_SECONDS": "60",
        "SCANNER_HEARTBEAT_INTERVAL_SECONDS": "1",
        "SCANNER_POLL_INTERVAL_SECONDS": "0.1",
        "SCANNER_GRACE_SECONDS": "0",
        "SCANNER_INSTANCE_ID": f"test-{uuid.uuid4().hex[:8]}",
    }
    env.update({f"SCANNER_{name.upper()}": value for name, value in overrides.items()})
    return {k: v for k, v in env.items() if v != ""}


def llm_overrides(llm: Llm, budget_target: str, **more: str) -> dict[str, str]:
    """Settings (by field name) of a scanner whose LLM analyst talks to ``llm`` and the budget."""
    return {
        "llm_base_url": llm.url,
        "llm_api_key": "sim-key-not-a-secret",
        "llm_model": "gpt-4o-mini",
        "budget_addr": budget_target,
        "budget_token": SCANNER_TOKEN,
        **more,
    }


@contextmanager
def assembled(
    postgres: Postgres,
    exchange_url: str,
    clock: Clock | None = None,
    *,
    analysts: Mapping[str, Analyst] | None = None,
    config: Mapping[str, str] | None = None,
    **overrides: str,
) -> Iterator[Scanner]:
    """A wired scanner with its own connection pool, nothing started: tests drive it turn by turn.
    ``config`` and ``overrides`` are settings by field name."""
    settings = load_settings(scanner_env(postgres, exchange_url, **{**(config or {}), **overrides}))
    db = open_database(settings, service="scanner", role="oracle_scanner")
    scanner = assemble(settings, db, clock or SystemClock(), analysts=analysts)
    try:
        yield scanner
    finally:
        scanner.heartbeat.stop()
        scanner.scheduler.stop()
        for close in scanner.closers:
            close()
        db.close()


@dataclass
class ScannerServer:
    """An in-process scanner server: stubs for the operator and the viewer."""

    port: int
    settings: ScannerSettings
    stub: pb_grpc.ScannerServiceStub
    channels: list[grpc.Channel] = field(default_factory=list)

    def run(
        self,
        user_id: str,
        markets: Sequence[str] = (),
        *,
        job_id: str = "",
        analyst: pb.AnalystKind.ValueType = pb.ANALYST_KIND_UNSPECIFIED,
    ) -> pb.RunScanResponse:
        reply: pb.RunScanResponse = self.stub.RunScan(
            pb.RunScanRequest(user_id=user_id, markets=list(markets), job_id=job_id, analyst=analyst), timeout=60
        )
        return reply

    def create_job(
        self, user_id: str, markets: Sequence[str], *, analyst: pb.AnalystKind.ValueType, interval_s: int = 3600
    ) -> pb.ScanJob:
        request = pb.CreateScanJobRequest(user_id=user_id, markets=list(markets), analyst=analyst)
        request.interval.FromTimedelta(timedelta(seconds=interval_s))
        reply: pb.CreateScanJobResponse = self.stub.CreateScanJob(request, timeout=10)
        return reply.job

    def jobs(self, user_id: str) -> list[pb.ScanJob]:
        reply: pb.ListScanJobsResponse = self.stub.ListScanJobs(pb.ListScanJobsRequest(user_id=user_id), timeout=10)
        return list(reply.jobs)


@contextmanager
def in_process_scanner(
    postgres: Postgres,
    exchange_url: str,
    clock: Clock | None = None,
    *,
    analysts: Mapping[str, Analyst] | None = None,
    config: Mapping[str, str] | None = None,
    **overrides: str,
) -> Iterator[ScannerServer]:
    """A scanner server in this process, built like the real one (``app.build``); ``config`` and
    ``overrides`` are settings by field name."""
    settings = load_settings(scanner_env(postgres, exchange_url, **{**(config or {}), **overrides}))
    db = open_database(settings, service="scanner", role="oracle_scanner")
    bindings, hooks = build(settings, db, clock or SystemClock(), analysts=analysts)
    running = start_service(service="scanner", settings=settings, db=db, bindings=bindings)
    running.on_shutdown.extend(hooks)
    chan = channel(running.port, OPERATOR_TOKEN)
    try:
        yield ScannerServer(running.port, settings, pb_grpc.ScannerServiceStub(chan), [chan])
    finally:
        chan.close()
        running.grace_seconds = 0
        running.shutdown()


# ------------------------------------------------------------------------------ database
def seed_policy(postgres: Postgres, user_id: str, *, auto_execute: bool = False, **columns: Any) -> None:
    """A permissive trading policy for ``user_id``, written as the superuser (the executor owns it)."""
    values: dict[str, Any] = {
        "allowed_markets": list(MARKETS),
        "min_order_eur": Decimal("10"),
        "max_order_eur": Decimal("100"),
        "min_confidence": 0,
        "cooldown_seconds": 0,
        "anti_flip_seconds": 0,
        "daily_trade_cap": 1000,
        "hourly_trade_cap": 1000,
        "daily_notional_cap_eur": Decimal("100000"),
        "price_guard_pct": Decimal("20"),
        "auto_execute": auto_execute,
        **columns,
    }
    names = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    with postgres.admin() as conn:
        conn.execute(
            f"INSERT INTO oracle.trading_policies (user_id, {names}) VALUES (%s, {marks})",
            (user_id, *values.values()),
        )


def insert_due_job(
    postgres: Postgres, user_id: str, markets: Sequence[str], *, due: datetime, interval_s: int = 3600
) -> str:
    """A job due at ``due``, written as the superuser."""
    job_id = str(uuid.uuid4())
    with postgres.admin() as conn:
        conn.execute(
            "INSERT INTO oracle.scan_jobs (job_id, user_id, markets, interval_seconds, analyst, next_run_at, created_at)"
            " VALUES (%s, %s, %s, %s, 'rules', %s, %s)",
            (job_id, user_id, list(markets), interval_s, due, due),
        )
    return job_id


def rows(postgres: Postgres, sql: str, *params: Any) -> list[dict[str, Any]]:
    """Rows of ``sql`` as dicts, read as the superuser."""
    with postgres.admin() as conn:
        cur = conn.execute(sql, params)
        names = [c.name for c in cur.description or ()]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def scan_runs(postgres: Postgres, kind: str = "scan.completed") -> list[dict[str, Any]]:
    """Every recorded scan run (the audit trail's payloads), with the job as ``job_id``."""
    found = rows(
        postgres,
        "SELECT user_id, subject_id, payload FROM oracle.audit_events WHERE service = 'scanner' AND kind = %s",
        kind,
    )
    return [{"user_id": r["user_id"], "job_id": r["subject_id"], **r["payload"]} for r in found]


def proposals_of(postgres: Postgres, user_id: str) -> list[dict[str, Any]]:
    return rows(
        postgres,
        "SELECT proposal_id::text AS proposal_id, job_id::text AS job_id, market, side, amount_quote, confidence,"
        " status, fencing_token, market_snapshot, policy_snapshot, created_at, expires_at"
        " FROM oracle.trade_proposals WHERE user_id = %s ORDER BY created_at",
        user_id,
    )


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# ------------------------------------------------------------------------------ analysts
class GatedAnalyst:
    """Wraps an analyst; every call signals ``entered`` and waits for ``release`` (at most
    ``timeout`` seconds) before answering: a job that stalls mid-run, e.g. a long GC pause or a
    partition. Once released, calls answer at once."""

    def __init__(self, inner: Analyst, *, timeout: float = 60.0) -> None:
        self._inner = inner
        self._timeout = timeout
        self.entered = threading.Event()
        self.release = threading.Event()

    @property
    def kind(self) -> str:
        return self._inner.kind

    def analyse(self, request: AnalysisRequest) -> Decision:
        self.entered.set()
        self.release.wait(self._timeout)
        return self._inner.analyse(request)
