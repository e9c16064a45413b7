"""Benchmarks 2 and 3: ExecuteProposal end to end, live (real orders at the simulator) and paper.

Two ``python -m services.executor`` processes (live: with the simulator's trade key, the official
SDK and real order placement; paper: no key, nothing sent) on the benchmark database and one
simulator process. The setup is what production does:

* the account daily notional cap is set through the UpdateAccountSettings RPC and each user gets
  a policy through the UpdatePolicy RPC, as the operator (every market the proposals use allowed,
  confidence 50, no cooldown, caps far above what the run needs);
* proposals are written to ``oracle.trade_proposals`` the way the scanner writes them, with the
  market snapshot price read from the simulator;
* client threads call ExecuteProposal as the *scanner* principal (auto-execute), each task one
  proposal, spread round-robin over the users and alternating between the two processes.

Scenarios: ``one-caller`` (one thread: the latency of an execution that waits for nobody) and
``many-users`` (``Sizes.threads`` threads over many users). There is no hot-user scenario: every
claim, whatever the user, also takes the account-wide lock and row (see services/executor/README.md),
so many users already contend where a hot user would.

A task succeeds when the answer is an execution in status FILLED. Afterwards the run must account
for every success: live — orders held by the simulator, POST /order requests it received, orders
carrying the successes' clientOrderIds, and FILLED live executions in the database all equal the
number of successes; paper — the simulator received no order at all, and the database holds one
FILLED paper execution per success.

Rate limits: see ``bench.sizes``. Before each round the simulator's clock moves to a fresh
rate-limit minute; the run fails a check if any identity was banned.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
from google.protobuf.duration_pb2 import Duration
from oracle.executor.v1 import executor_service_pb2 as pb
from oracle.executor.v1 import executor_service_pb2_grpc as pb_grpc
from psycopg.types.json import Jsonb

from bench import floors
from bench.infra import Infra, Service
from bench.load import Outcome, Run, Task, run
from bench.machine import CpuProbe
from bench.results import Check, Scenario
from bench.sizes import Sizes
from shared.channel import open_channel
from sim.bitvavo import DEFAULT_TRADE_KEY, DEFAULT_TRADE_SECRET, SimulatorAdmin

PROCESSES = 2
MARKETS = ("BTC-EUR", "ETH-EUR", "SOL-EUR")
AMOUNT_EUR = Decimal("10.00")
CALL_TIMEOUT_SECONDS = 30.0
OPERATOR_ID = "90210"
ACCOUNT_EUR = "100000000"


@dataclass
class Exchange:
    """The simulator process and its admin client."""

    service: Service
    admin: SimulatorAdmin

    @property
    def url(self) -> str:
        return self.service.child.ready_value


def start_exchange(infra: Infra) -> Exchange:
    """One simulator for the executor benchmarks, with plenty of EUR on the account."""
    service = infra.simulator()
    admin = SimulatorAdmin(service.child.ready_value)
    admin.set_balance("EUR", ACCOUNT_EUR)
    return Exchange(service, admin)


def service_env(infra: Infra, exchange_url: str, mode: str) -> dict[str, str]:
    """Production defaults except: loopback, this run's tokens, the simulator, a paper balance far
    above what the run needs, a short shutdown grace. (The account cap is in the database:
    :func:`set_account_cap`.)"""
    env = {
        "EXECUTOR_MODE": mode,
        "EXECUTOR_LISTEN_ADDR": "127.0.0.1:0",
        "EXECUTOR_DATABASE_URL": infra.role_url("executor"),
        "EXECUTOR_PRINCIPAL_TOKENS": infra.tokens.principal_tokens,
        "EXECUTOR_EXCHANGE_URL": exchange_url,
        "EXECUTOR_GRACE_SECONDS": "1",
    }
    if mode == "live":
        env |= {
            "EXECUTOR_BITVAVO_API_KEY": DEFAULT_TRADE_KEY,
            "EXECUTOR_BITVAVO_API_SECRET": DEFAULT_TRADE_SECRET,
            "EXECUTOR_OPERATOR_ID": OPERATOR_ID,
        }
    else:
        env["EXECUTOR_PAPER_BALANCE_EUR"] = ACCOUNT_EUR
    return env


def policy(user_id: str) -> pb.Policy:
    """A policy every benchmark proposal passes (the validators still run in full)."""
    return pb.Policy(
        user_id=user_id,
        allowed_markets=list(MARKETS),
        min_order_eur="5",
        max_order_eur="1000",
        min_confidence=50,
        cooldown=Duration(seconds=0),
        anti_flip_window=Duration(seconds=0),
        daily_trade_cap=1000,
        hourly_trade_cap=1000,
        daily_notional_cap_eur="1000000",
        price_guard_pct="10",
        auto_execute=True,
    )


def set_account_cap(stub: pb_grpc.ExecutorServiceStub, cap: str) -> None:
    """UpdateAccountSettings (as the operator): the account daily notional cap far above the run's."""
    current = stub.GetPolicy(pb.GetPolicyRequest(user_id="bench"), timeout=CALL_TIMEOUT_SECONDS).account
    stub.UpdateAccountSettings(
        pb.UpdateAccountSettingsRequest(
            settings=pb.AccountSettings(daily_notional_cap_eur=cap), expected_version=current.version
        ),
        timeout=CALL_TIMEOUT_SECONDS,
    )


def set_policies(
    stub: pb_grpc.ExecutorServiceStub, users: Sequence[str], make: Callable[[str], pb.Policy] = policy
) -> None:
    """UpdatePolicy (as the operator) for every user (``make(user_id)``, by default :func:`policy`),
    from the version GetPolicy reports."""

    def one(user_id: str) -> None:
        current = stub.GetPolicy(pb.GetPolicyRequest(user_id=user_id), timeout=CALL_TIMEOUT_SECONDS).policy
        stub.UpdatePolicy(
            pb.UpdatePolicyRequest(policy=make(user_id), expected_version=current.version),
            timeout=CALL_TIMEOUT_SECONDS,
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, users))


def seed_proposals(
    admin_url: str,
    prices: dict[str, Decimal],
    owners: Sequence[str],
    *,
    markets: Sequence[str] = MARKETS,
    sides: Sequence[str] = ("buy",),
    amount: Decimal = AMOUNT_EUR,
) -> list[str]:
    """One open proposal per entry of ``owners`` (a user id), as the scanner writes them: the
    k-th on ``markets[k % len]`` and ``sides[k % len]`` (proposals are immutable once written)."""
    rows = []
    ids = []
    for k, user_id in enumerate(owners):
        market, side = markets[k % len(markets)], sides[k % len(sides)]
        proposal_id = str(uuid.uuid4())
        ids.append(proposal_id)
        rows.append((proposal_id, user_id, market, side, amount, Jsonb({"price": str(prices[market])})))
    with psycopg.connect(admin_url, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO oracle.trade_proposals (proposal_id, user_id, market, side, amount_quote, confidence,"
            " rationale, analyst, model, market_snapshot, policy_snapshot, status, created_at, expires_at)"
            " VALUES (%s, %s, %s, %s, %s, 75, 'benchmark', 'rules', 'rules-v1', %s, '{}', 'open',"
            " now() - interval '1 second', now() + %s)",
            [(*row, timedelta(minutes=30)) for row in rows],
        )
    return ids


class Executions:
    """Tasks that execute one proposal each, and the clientOrderIds of those that succeeded."""

    def __init__(self, stubs: Sequence[pb_grpc.ExecutorServiceStub]) -> None:
        self._stubs = stubs
        self._lock = threading.Lock()
        self.client_order_ids: list[str] = []

    def tasks(self, pairs: Sequence[tuple[str, str]]) -> list[Task]:
        return [self._task(self._stubs[k % len(self._stubs)], user, pid) for k, (user, pid) in enumerate(pairs)]

    def _task(self, stub: pb_grpc.ExecutorServiceStub, user_id: str, proposal_id: str) -> Callable[[], Outcome]:
        request = pb.ExecuteProposalRequest(user_id=user_id, proposal_id=proposal_id)

        def task() -> Outcome:
            execution = stub.ExecuteProposal(request, timeout=CALL_TIMEOUT_SECONDS).execution
            if execution.status != pb.EXECUTION_STATUS_FILLED:
                return Outcome("status:" + pb.ExecutionStatus.Name(execution.status))
            with self._lock:
                self.client_order_ids.append(execution.client_order_id)
            return Outcome()

        return task


@dataclass(frozen=True)
class Phase:
    """One measured scenario: its own users and proposals, ``rounds`` x ``per_round`` tasks."""

    name: str
    threads: int
    users: list[str]
    rounds: int
    per_round: int
    deadline_seconds: float


@dataclass
class Bench:
    """What every phase of one executor benchmark shares."""

    infra: Infra
    exchange: Exchange
    mode: str
    services: list[Service]
    stubs: list[pb_grpc.ExecutorServiceStub]
    stop: threading.Event
    say: Callable[[str], None]
    history: int


def run_executor(
    infra: Infra,
    exchange: Exchange,
    mode: str,
    sizes: Sizes,
    *,
    history: int,
    one_caller: bool,
    into: list[Scenario],
    stop: threading.Event,
    say: Callable[[str], None],
) -> None:
    """The ``execute-<mode>`` benchmark against its own pair of executor processes: one caller
    (the latency without queueing; only when ``one_caller``), then ``sizes.threads`` callers, then
    the floor of the latter (``bench.floors``) with the same users, threads and number of tasks.
    Each finished scenario is appended to ``into`` at once; ``history`` is what the database holds."""
    live = mode == "live"
    tag = f"{int(time.time())}-h{history}"
    phases = [
        Phase("one-caller", 1, [f"bench-{mode}-one-{tag}-{i}" for i in range(8)], 1, sizes.executor_one_caller, 30.0),
        Phase(
            "many-users",
            sizes.threads,
            [f"bench-{mode}-{tag}-{i}" for i in range(sizes.executor_users)],
            sizes.live_rounds if live else sizes.paper_rounds,
            sizes.live_round if live else sizes.paper_round,
            sizes.executor_deadline_seconds,
        ),
    ]
    if not one_caller:
        phases = phases[1:]
    warm_users = [f"bench-{mode}-warm-{tag}-{i}" for i in range(4)]
    with infra.group(), ExitStack() as channels:
        say(f"starting {PROCESSES} executor processes ({mode})")
        services = infra.services(
            "services.executor", [service_env(infra, exchange.url, mode)] * PROCESSES, name=f"executor-{mode}"
        )
        operator = pb_grpc.ExecutorServiceStub(
            channels.enter_context(open_channel(services[0].target, infra.tokens.operator))
        )
        stubs = [
            pb_grpc.ExecutorServiceStub(channels.enter_context(open_channel(s.target, infra.tokens.scanner)))
            for s in services
        ]
        bench = Bench(infra, exchange, mode, services, stubs, stop, say, history)
        every_user = [*warm_users, *(u for phase in phases for u in phase.users)]
        say(f"account cap (UpdateAccountSettings), policies for {len(every_user)} users (UpdatePolicy), proposals")
        set_account_cap(operator, ACCOUNT_EUR)
        set_policies(operator, every_user)

        say("warm-up (not measured)")
        warm_owners = [warm_users[k % len(warm_users)] for k in range(sizes.threads)]
        warm_ids = seed_proposals(infra.admin_url, exchange.admin.prices(), warm_owners)
        exchange.admin.advance_to_next_minute()
        warm = Executions(stubs).tasks(list(zip(warm_owners, warm_ids, strict=True)))
        run(warm, threads=sizes.threads, deadline_seconds=60, stop=stop)

        for phase in phases:
            if stop.is_set():
                break
            into.append(_measure(bench, phase))
        if not stop.is_set():
            into.append(_measure_floor(bench, phases[-1]))


def _measure_floor(bench: Bench, phase: Phase) -> Scenario:
    """The floor of ``phase`` (``bench.floors``): the same users, threads, rounds and tasks, no
    gRPC and no service code; every success must be one FILLED row (and, live, one order)."""
    admin, mode = bench.exchange.admin, bench.mode
    owners = [phase.users[k % len(phase.users)] for k in range(phase.rounds * phase.per_round)]
    prices = admin.prices()
    ids = seed_proposals(bench.infra.admin_url, prices, owners)
    triples = [(user, pid, MARKETS[k % len(MARKETS)]) for k, (user, pid) in enumerate(zip(owners, ids, strict=True))]
    placed: list[str] = []
    before = _exchange_state(admin)
    filled_before = _filled(bench.infra, mode, phase.users)
    probe = CpuProbe({"bitvavo-sim": bench.exchange.service.cpu_seconds, "postgres": bench.infra.postgres_cpu_seconds})
    runs: list[Run] = []
    probe.start()
    for r in range(phase.rounds):
        if bench.stop.is_set():
            break
        bench.say(f"execute-{mode} floor: round {r + 1}/{phase.rounds}, {phase.per_round} tasks")
        admin.advance_to_next_minute()
        chunk = triples[r * phase.per_round : (r + 1) * phase.per_round]
        specs = [
            floors.ExecutorSpec(
                url=bench.infra.role_url("executor"),
                mode=mode,
                triples=tuple(chunk[i :: floors.PROCESSES]),
                amount=AMOUNT_EUR,
                prices=prices,
                exchange_url=bench.exchange.url,
                key=DEFAULT_TRADE_KEY,
                secret=DEFAULT_TRADE_SECRET,
                operator_id=OPERATOR_ID,
            )
            for i in range(floors.PROCESSES)
        ]
        measured, sent = floors.run_in_processes(specs, threads=phase.threads, deadline_seconds=phase.deadline_seconds)
        runs.append(measured)
        placed.extend(sent)
    cpu = probe.stop()
    measured = _merge(runs, planned=len(triples), threads=phase.threads)
    after = _exchange_state(admin)
    ok = len(measured.ok)
    checks = [Check("no failed task", 0, sum(measured.failures.values()))]
    checks += _exchange_checks(admin, mode, ok=ok, before=before, after=after, client_order_ids=placed)
    filled = _filled(bench.infra, mode, phase.users) - filled_before
    checks.append(Check(f"FILLED {mode} executions in the database = successes", ok, filled))
    return Scenario(
        benchmark=f"execute-{mode}",
        name=phase.name,
        unit="execution",
        parameters={
            "client_threads": phase.threads,
            "floor_processes": floors.PROCESSES,
            "users": len(phase.users),
            "rounds": phase.rounds,
            "per_round": phase.per_round,
            "statements": "bench/floors.py",
        },
        summary=measured.summary(),
        checks=checks,
        cpu=cpu,
        history=bench.history,
        kind="floor",
    )


def _measure(bench: Bench, phase: Phase) -> Scenario:
    """Seed the phase's proposals, run its rounds, check that every success is accounted for."""
    admin, mode = bench.exchange.admin, bench.mode
    owners = [phase.users[k % len(phase.users)] for k in range(phase.rounds * phase.per_round)]
    pairs = list(zip(owners, seed_proposals(bench.infra.admin_url, admin.prices(), owners), strict=True))
    executions = Executions(bench.stubs)
    before = _exchange_state(admin)
    probe_groups: dict[str, Callable[[], float]] = {s.name: s.cpu_seconds for s in bench.services}
    probe_groups["bitvavo-sim"] = bench.exchange.service.cpu_seconds
    probe_groups["postgres"] = bench.infra.postgres_cpu_seconds
    probe = CpuProbe(probe_groups)
    runs: list[Run] = []
    max_used: Counter[str] = Counter()
    bans = 0
    probe.start()
    for r in range(phase.rounds):
        if bench.stop.is_set():
            break
        bench.say(
            f"execute-{mode} {phase.name}: round {r + 1}/{phase.rounds}, "
            f"{phase.per_round} proposals from {phase.threads} thread(s)"
        )
        admin.advance_to_next_minute()
        chunk = pairs[r * phase.per_round : (r + 1) * phase.per_round]
        tasks = executions.tasks(chunk)
        runs.append(run(tasks, threads=phase.threads, deadline_seconds=phase.deadline_seconds, stop=bench.stop))
        for identity, usage in admin.rate_limit_usage().items():
            kind = identity.split(":", 1)[0]
            max_used[kind] = max(max_used[kind], int(usage["used"]))
            bans += int(usage["bannedUntil"] > 0)
    cpu = probe.stop()
    measured = _merge(runs, planned=len(pairs), threads=phase.threads)
    after = _exchange_state(admin)
    ok = len(measured.ok)
    checks = [Check("no failed task", 0, sum(measured.failures.values()))]
    checks += _exchange_checks(
        admin, mode, ok=ok, before=before, after=after, client_order_ids=executions.client_order_ids
    )
    checks.append(Check("rate-limit bans at the simulator", 0, bans))
    filled = _filled(bench.infra, mode, phase.users)
    checks.append(Check(f"FILLED {mode} executions in the database = successes", ok, filled))
    added = {name: n - before["requests"].get(name, 0) for name, n in sorted(after["requests"].items())}
    per_execution = {name: round(n / ok, 2) for name, n in added.items() if n and ok}
    return Scenario(
        benchmark=f"execute-{mode}",
        name=phase.name,
        unit="execution",
        parameters={
            "client_threads": phase.threads,
            "executor_processes": PROCESSES,
            "users": len(phase.users),
            "rounds": phase.rounds,
            "per_round": phase.per_round,
            "deadline_seconds_per_round": phase.deadline_seconds,
            "amount_eur": str(AMOUNT_EUR),
            "markets": list(MARKETS),
            "principal": "scanner",
        },
        summary=measured.summary(),
        checks=checks,
        cpu=cpu,
        extra={
            "exchange requests per execution": per_execution,
            "most rate-limit weight used in one round": dict(max_used),
        },
        history=bench.history,
    )


def _merge(runs: Sequence[Run], *, planned: int, threads: int) -> Run:
    """Rounds as one run: their samples together, their wall times added up."""
    return Run(
        threads=threads,
        planned=planned,
        wall_seconds=sum(r.wall_seconds for r in runs),
        samples=[s for r in runs for s in r.samples],
        cut_by_deadline=any(r.cut_by_deadline for r in runs),
        interrupted=any(r.interrupted for r in runs),
    )


def _exchange_state(admin: SimulatorAdmin) -> dict[str, Any]:
    stats = admin.stats()
    return {
        "orders": admin.order_count(),
        "post_orders": sum(stats["postOrderByKey"].values()),
        "requests": dict(stats["requests"]),
    }


def _exchange_checks(
    admin: SimulatorAdmin,
    mode: str,
    *,
    ok: int,
    before: dict[str, Any],
    after: dict[str, Any],
    client_order_ids: list[str],
) -> list[Check]:
    orders_added = after["orders"] - before["orders"]
    posts_added = after["post_orders"] - before["post_orders"]
    if mode != "live":
        return [
            Check("orders placed at the simulator", 0, orders_added),
            Check("POST /order requests at the simulator", 0, posts_added),
        ]
    wanted = set(client_order_ids)
    matched = Counter(
        o["order"].get("clientOrderId") for o in admin.orders() if o["order"].get("clientOrderId") in wanted
    )
    return [
        Check("orders placed at the simulator = successes", ok, orders_added),
        Check("POST /order requests at the simulator = successes", ok, posts_added),
        Check(
            "successes with exactly one order under their clientOrderId", ok, sum(1 for n in matched.values() if n == 1)
        ),
    ]


def _filled(infra: Infra, mode: str, users: Sequence[str]) -> int:
    with psycopg.connect(infra.admin_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM oracle.trade_executions WHERE user_id = ANY(%s) AND mode = %s AND status = 'FILLED'",
            (list(users), mode),
        ).fetchone()
    return int(row[0]) if row else 0
