"""What the executor tests stand on: a real Bitvavo simulator, real executor servers (in this
process or as their own processes), proposals seeded the way the scanner writes them, and
counts taken at the simulator — never in our own tables — when a test asks "how many orders".

In-process executors are built exactly as ``python -m services.executor`` builds them
(``services.executor.app.build`` + ``shared.bootstrap.start_service``), only with an injected
clock or test hooks.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from oracle.executor.v1 import executor_service_pb2 as pb
from oracle.executor.v1 import executor_service_pb2_grpc as pb_grpc

from services.executor.app import build
from services.executor.config import load_settings
from services.executor.execution import Hooks
from services.executor.model import Lookup, MarketInfo, OrderView, Side
from services.executor.venue import Venue
from shared.bootstrap import open_database, start_service
from shared.clock import Clock, SystemClock
from shared.errors import ErrorReport, from_rpc_error
from shared.exchange.sdk import ApiCredentials, ExchangeSettings, RateLimitStatus
from shared.exchange.weights import WeightTally
from sim.bitvavo import DEFAULT_TRADE_KEY, DEFAULT_TRADE_SECRET, BitvavoSimulator, SimulatorAdmin
from sim.bitvavo.switches import Switches
from tests.harness import (
    OPERATOR_TOKEN,
    PRINCIPAL_TOKENS,
    SCANNER_TOKEN,
    Postgres,
    ServiceProcess,
    channel,
    new_user_id,
    running_process,
)
from tests.support.trade_client import FullTradeClient

OPERATOR_ID = 424242
MODULE = "services.executor"
CRASHING_MODULE = "tests.support.executor_with_hooks"


@dataclass
class Exchange:
    """A running simulator and its admin client."""

    sim: BitvavoSimulator
    admin: SimulatorAdmin
    url: str

    def orders(self, market: str | None = None) -> list[dict[str, Any]]:
        """Every order the exchange holds (as the admin API reports them)."""
        return [o["order"] for o in self.admin.orders(market=market)]

    def order_count(self) -> int:
        return self.admin.order_count()

    def post_count(self) -> int:
        """POST /order requests that arrived, whatever became of them."""
        return self.admin.post_order_count()

    def price(self, market: str) -> Decimal:
        return self.admin.prices()[market]


@contextmanager
def running_exchange(
    eur: str = "100000", *, closed_orders_by_client_order_id: bool = False, skew_ms: int = 0, **switches: Any
) -> Iterator[Exchange]:
    """A fresh simulator with ``eur`` on the default account. By default it takes the
    conservative reading of the live API: ``GET /order?clientOrderId=`` does not find closed
    orders, and history requests span at most 24 h (sim/bitvavo/README.md, Switches)."""
    sim = BitvavoSimulator(
        seed=7,
        switches=Switches(closed_orders_by_client_order_id=closed_orders_by_client_order_id, **switches),
        skew_ms=skew_ms,
    )
    url = sim.start()
    admin = SimulatorAdmin(url)
    admin.set_balance("EUR", eur)
    try:
        yield Exchange(sim, admin, url)
    finally:
        admin.close()
        sim.stop()


def service_env(postgres: Postgres, exchange_url: str, *, mode: str = "live", **overrides: str) -> dict[str, str]:
    """The executor's environment for tests (short timings); ``overrides`` by field name."""
    env = {
        "EXECUTOR_MODE": mode,
        "EXECUTOR_DATABASE_URL": postgres.url("executor"),
        "EXECUTOR_PRINCIPAL_TOKENS": PRINCIPAL_TOKENS,
        "EXECUTOR_EXCHANGE_URL": exchange_url,
        "EXECUTOR_DB_HEALTH_INTERVAL_SECONDS": "5",
        "EXECUTOR_DB_POOL_MAX": "20",
        "EXECUTOR_MAX_WORKERS": "64",
        "EXECUTOR_REQUEST_TIMEOUT_SECONDS": "2",
        "EXECUTOR_ACCESS_WINDOW_MS": "1000",
        "EXECUTOR_RECONCILE_SAFETY_MARGIN_SECONDS": "0.5",
        "EXECUTOR_RECONCILE_INTERVAL_SECONDS": "3600",  # tests reconcile on demand
        "EXECUTOR_STALE_CLAIMED_SECONDS": "60",
        "EXECUTOR_GRACE_SECONDS": "0",
        # tests move the simulator's balances between executions and expect the next check to see
        # them; test_balance_cache.py runs with the cache on
        "EXECUTOR_BALANCE_CACHE_SECONDS": "0",
    }
    if mode == "live":
        env["EXECUTOR_BITVAVO_API_KEY"] = DEFAULT_TRADE_KEY
        env["EXECUTOR_BITVAVO_API_SECRET"] = DEFAULT_TRADE_SECRET
        env["EXECUTOR_OPERATOR_ID"] = str(OPERATOR_ID)
    env.update({f"EXECUTOR_{name.upper()}": value for name, value in overrides.items()})
    return {k: v for k, v in env.items() if v != ""}


@dataclass
class Executor:
    """A running executor: stubs for the operator and the scanner principal."""

    port: int
    postgres: Postgres
    operator: pb_grpc.ExecutorServiceStub
    scanner: pb_grpc.ExecutorServiceStub
    channels: list[grpc.Channel] = field(default_factory=list)
    metrics_port: int | None = None  # a process executor's /metrics (shared.metrics)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def execute(self, user_id: str, proposal_id: str, **flags: Any) -> pb.Execution:
        reply: pb.ExecuteProposalResponse = self.operator.ExecuteProposal(
            pb.ExecuteProposalRequest(user_id=user_id, proposal_id=proposal_id, **flags), timeout=30
        )
        return reply.execution

    def refused(self, user_id: str, proposal_id: str, *, as_scanner: bool = False, **flags: Any) -> ErrorReport:
        stub = self.scanner if as_scanner else self.operator
        return failure(
            lambda: stub.ExecuteProposal(
                pb.ExecuteProposalRequest(user_id=user_id, proposal_id=proposal_id, **flags), timeout=30
            )
        )

    def reconcile(self, user_id: str = "") -> pb.ReconcileExecutionsResponse:
        reply: pb.ReconcileExecutionsResponse = self.operator.ReconcileExecutions(
            pb.ReconcileExecutionsRequest(user_id=user_id), timeout=60
        )
        return reply

    def get(self, user_id: str, execution_id: str) -> pb.Execution:
        reply: pb.GetExecutionResponse = self.operator.GetExecution(
            pb.GetExecutionRequest(user_id=user_id, execution_id=execution_id), timeout=10
        )
        return reply.execution

    def set_policy(self, user_id: str, **overrides: Any) -> pb.Policy:
        """Store a permissive test policy (overridden by keyword), whatever version is stored."""
        current = self.operator.GetPolicy(pb.GetPolicyRequest(user_id=user_id)).policy
        policy = permissive_policy(user_id, **overrides)
        reply: pb.UpdatePolicyResponse = self.operator.UpdatePolicy(
            pb.UpdatePolicyRequest(policy=policy, expected_version=current.version)
        )
        return reply.policy

    def account(self) -> pb.AccountSettings:
        """The live account settings (GetPolicy carries them beside any user's policy)."""
        settings: pb.AccountSettings = self.operator.GetPolicy(pb.GetPolicyRequest(user_id="account-reader")).account
        return settings

    def set_account_cap(self, cap: str) -> pb.AccountSettings:
        """Set the account daily notional cap through UpdateAccountSettings, from the version read."""
        reply: pb.UpdateAccountSettingsResponse = self.operator.UpdateAccountSettings(
            pb.UpdateAccountSettingsRequest(
                settings=pb.AccountSettings(daily_notional_cap_eur=cap), expected_version=self.account().version
            )
        )
        return reply.settings

    def kill_switch(self, *, enabled: bool, user_id: str = "") -> None:
        scope = pb.KILL_SWITCH_SCOPE_USER if user_id else pb.KILL_SWITCH_SCOPE_GLOBAL
        self.operator.SetTradingEnabled(
            pb.SetTradingEnabledRequest(scope=scope, user_id=user_id, enabled=enabled, reason="test")
        )

    def audit(self, user_id: str, subject_id: str = "") -> list[pb.AuditEvent]:
        events: list[pb.AuditEvent] = []
        token = ""
        while True:
            page = self.operator.ListAuditEvents(
                pb.ListAuditEventsRequest(user_id=user_id, subject_id=subject_id, page_size=200, page_token=token)
            )
            events.extend(page.events)
            token = page.next_page_token
            if not token:
                return events

    def close(self) -> None:
        for chan in self.channels:
            chan.close()


def _stubs(port: int, postgres: Postgres) -> Executor:
    op, sc = channel(port, OPERATOR_TOKEN), channel(port, SCANNER_TOKEN)
    return Executor(port, postgres, pb_grpc.ExecutorServiceStub(op), pb_grpc.ExecutorServiceStub(sc), [op, sc])


@contextmanager
def in_process_executor(
    postgres: Postgres,
    exchange_url: str,
    *,
    clock: Clock | None = None,
    hooks: Hooks | None = None,
    venue: Callable[[Venue], Venue] | None = None,
    mode: str = "live",
    **overrides: str,
) -> Iterator[Executor]:
    """An executor server in this process, built like the real one; ``venue`` may wrap the venue."""
    from services.executor.app import create_venue

    settings = load_settings(service_env(postgres, exchange_url, mode=mode, **overrides))
    clock = clock or SystemClock()
    db = open_database(settings, service="executor", role="oracle_executor")
    the_venue = create_venue(settings, db, clock)
    if venue is not None:
        the_venue = venue(the_venue)
    bindings, stop_hooks = build(settings, db, clock, venue=the_venue, hooks=hooks)
    running = start_service(service="executor", settings=settings, db=db, bindings=bindings)
    running.on_shutdown.extend(stop_hooks)
    executor = _stubs(running.port, postgres)
    try:
        yield executor
    finally:
        executor.close()
        running.grace_seconds = 0
        running.shutdown()


@contextmanager
def account_cap(executor: Executor, cap: str) -> Iterator[pb.AccountSettings]:
    """The account daily notional cap set to ``cap`` through UpdateAccountSettings for the block,
    and back to what it was after: tests share one database, and its one account settings row."""
    before = executor.account().daily_notional_cap_eur
    try:
        yield executor.set_account_cap(cap)
    finally:
        executor.set_account_cap(before)


@contextmanager
def process_executor(
    postgres: Postgres,
    exchange_url: str,
    log_path: Path,
    *,
    mode: str = "live",
    crash_at: str = "",
    clock_skew_seconds: str = "",
    hold_before_claim_until: str = "",
    **overrides: str,
) -> Iterator[tuple[Executor, ServiceProcess]]:
    """``python -m services.executor`` as its own process; with ``crash_at`` or
    ``clock_skew_seconds``, the test-only entry point that builds it with a hook killing the
    process there, with its own clock that many seconds off the machine's, or holding each
    execution before its claim until the file ``hold_before_claim_until`` exists."""
    env = service_env(postgres, exchange_url, mode=mode, **overrides)
    args = ["--crash-at", crash_at] if crash_at else []
    if clock_skew_seconds:
        args += ["--clock-skew-seconds", clock_skew_seconds]
    if hold_before_claim_until:
        args += ["--hold-before-claim-until", hold_before_claim_until]
    module = CRASHING_MODULE if args else MODULE
    with running_process(module, env, log_path, args=args) as proc:
        executor = _stubs(proc.port, postgres)
        executor.metrics_port = proc.metrics_port
        try:
            yield executor, proc
        finally:
            executor.close()


class VenueProxy:
    """A venue that passes every call to ``inner``: tests subclass it to change one call."""

    def __init__(self, inner: Venue) -> None:
        self.inner = inner
        self.mode = inner.mode

    def verify(self) -> None:
        self.inner.verify()

    def market_names(self) -> frozenset[str]:
        return self.inner.market_names()

    def market(self, market: str) -> MarketInfo | None:
        return self.inner.market(market)

    def price(self, market: str) -> Decimal:
        return self.inner.price(market)

    def free_balance(self, symbol: str, market: str) -> Decimal:
        return self.inner.free_balance(symbol, market)

    def exchange_now_ms(self, *, fresh: bool = False) -> int:
        return self.inner.exchange_now_ms(fresh=fresh)

    def weight_tally(self) -> AbstractContextManager[WeightTally]:
        return self.inner.weight_tally()

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
        return self.inner.place(
            market=market,
            side=side,
            amount_quote=amount_quote,
            client_order_id=client_order_id,
            sign_by_ms=sign_by_ms,
            amount=amount,
        )

    def find(self, *, market: str, client_order_id: str, since_ms: int, max_weight: int | None) -> Lookup:
        return self.inner.find(market=market, client_order_id=client_order_id, since_ms=since_ms, max_weight=max_weight)

    def rate_limits(self) -> Sequence[tuple[str, RateLimitStatus | None]]:
        return self.inner.rate_limits()


def trade_client(exchange_url: str) -> FullTradeClient:
    """A FullTradeClient under the executor's own trade key (the simulator's default account), for
    tests that act on the account behind the executor's back."""
    return FullTradeClient(
        ApiCredentials(DEFAULT_TRADE_KEY, DEFAULT_TRADE_SECRET),
        operator_id=OPERATOR_ID,
        settings=ExchangeSettings(rest_url=exchange_url),
    )


def permissive_policy(user_id: str, **overrides: Any) -> pb.Policy:
    """A policy that lets the tests' ordinary proposals through; ``overrides`` change fields."""
    values: dict[str, Any] = {
        "user_id": user_id,
        "allowed_markets": ["BTC-EUR", "ETH-EUR", "SOL-EUR"],
        "min_order_eur": "5",
        "max_order_eur": "1000",
        "min_confidence": 50,
        "cooldown": Duration(seconds=0),
        "anti_flip_window": Duration(seconds=0),
        "daily_trade_cap": 1000,
        "hourly_trade_cap": 1000,
        "daily_notional_cap_eur": "1000000",
        "price_guard_pct": "10",
        "auto_execute": True,
    }
    for name in ("cooldown", "anti_flip_window"):
        if isinstance(overrides.get(name), int):
            overrides[name] = Duration(seconds=overrides[name])
    values.update(overrides)
    return pb.Policy(**values)


def seed_proposal(
    postgres: Postgres,
    user_id: str,
    *,
    market: str = "BTC-EUR",
    side: str = "buy",
    amount: str = "10.00",
    confidence: int = 75,
    price: Decimal | str | None,
    expires_in: timedelta = timedelta(minutes=15),
    status: str = "open",
    now: datetime | None = None,
    policy_snapshot: dict[str, Any] | None = None,
) -> str:
    """A proposal as the scanner writes it (market snapshot with the price the analyst saw; the
    policy snapshot, for the audit trail only, empty unless given)."""
    proposal_id = str(uuid.uuid4())
    snapshot = {} if price is None else {"price": str(price)}
    with postgres.admin() as conn:
        row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        created = now or row[0]
        conn.execute(
            "INSERT INTO oracle.trade_proposals (proposal_id, user_id, market, side, amount_quote, confidence,"
            " rationale, analyst, model, market_snapshot, policy_snapshot, status, created_at, expires_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, 'test', 'rules', 'rules-v1', %s, %s, %s, %s, %s)",
            (
                proposal_id,
                user_id,
                market,
                side,
                Decimal(amount),
                confidence,
                json.dumps(snapshot),
                json.dumps(policy_snapshot or {}),
                status,
                created - timedelta(seconds=1),
                created + expires_in,
            ),
        )
    return proposal_id


def executions(postgres: Postgres, user_id: str) -> list[dict[str, Any]]:
    """The user's execution rows, read as the superuser."""
    with postgres.admin() as conn:
        cur = conn.execute(
            "SELECT execution_id::text AS execution_id, proposal_id::text AS proposal_id, status, mode,"
            " client_order_id::text AS client_order_id, exchange_order_id, error, submitting_at, claimed_at,"
            " sign_deadline_ms, fee_paid, fee_pending, found_late_until"
            " FROM oracle.trade_executions WHERE user_id = %s ORDER BY claimed_at",
            (user_id,),
        )
        names = [c.name for c in cur.description or ()]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def fills(postgres: Postgres, user_id: str) -> list[dict[str, Any]]:
    with postgres.admin() as conn:
        cur = conn.execute(
            "SELECT execution_id::text AS execution_id, fill_id, amount, price FROM oracle.trade_history"
            " WHERE user_id = %s",
            (user_id,),
        )
        names = [c.name for c in cur.description or ()]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def check_books(postgres: Postgres, user_id: str, mode: str = "live") -> list[str]:
    """The differences between the user's stored books and a rebuild from its fills, read as the
    executor role (services/executor/ledger.py ``check``); empty when they agree."""
    from services.executor import ledger
    from shared.db import Database

    db = Database(postgres.url("executor"), name="books-check", min_size=1, max_size=1)
    db.open()
    try:
        with db.transaction(user_id) as conn:
            result = ledger.check(conn, user_id, mode)
    finally:
        db.close()
    assert result.books > 0 or not result.differences
    return result.differences


def failure(call: Callable[[], Any]) -> ErrorReport:
    """Run ``call``, which must fail with a gRPC error; returns the decoded error."""
    try:
        call()
    except grpc.RpcError as exc:
        return from_rpc_error(exc)
    raise AssertionError("the call succeeded but was expected to fail")


def payload(event: pb.AuditEvent) -> dict[str, Any]:
    """An audit event's payload as plain JSON values."""
    return json_format.MessageToDict(event.payload)


def violation_types(report: ErrorReport) -> list[str]:
    return [v.type for v in report.precondition_violations]


def unpack_execution(report: ErrorReport) -> pb.Execution:
    """The Execution carried as an extra detail of ALREADY_EXISTS."""
    for detail in report.details:
        if detail.Is(pb.Execution.DESCRIPTOR):
            execution = pb.Execution()
            detail.Unpack(execution)
            return execution
    raise AssertionError("no Execution detail in the error")


def storm(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run every call at the same moment (one thread each, released by a barrier); returns each
    call's result, or its ErrorReport when it failed with a gRPC error."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except grpc.RpcError as exc:
            results[i] = from_rpc_error(exc)
        except Exception as exc:  # surfaced by the assertions
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def user() -> str:
    return new_user_id("ex")
