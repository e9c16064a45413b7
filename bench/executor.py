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

Rate limits: see ``bench.sizes``. Before each round every identity's weight at the simulator goes
back to zero (``SimulatorAdmin.fresh_rate_limits``; the clock does not move, so the executors'
measured exchange time stays right); the run fails a check if any identity was banned.

Rounds: ``many-users`` runs in ``Sizes.rounds`` rounds, each followed by a round of its floor
(``bench.floors``), so the two are measured at the same moments of a shared machine; every
scenario keeps its rounds one by one (``Scenario.rounds``) for the medians of ``bench.report``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
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
from bench.load import Outcome, Run, Task, merge, run
from bench.machine import CpuProbe, merge_cpu
from bench.results import Check, Scenario
from bench.sizes import Sizes
from shared.channel import open_channel
from shared.ids import new_id
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
        proposal_id = new_id()
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
    (the latency without queueing; only when ``one_caller``), then ``sizes.rounds`` rounds of
    ``sizes.threads`` callers, each followed by a round of its floor (``bench.floors``) with the
    same users, threads and number of tasks. Each phase's scenarios are appended to ``into`` as
    soon as it ends; ``history`` is what the database holds."""
    live = mode == "live"
    # The same users at every size (a database per run): the account holds as many users' books
    # at 1 000 000 past executions as at none, so only the history differs between sizes.
    tag = "m"
    phases = [
        Phase("one-caller", 1, [f"bench-{mode}-one-{tag}-{i}" for i in range(8)], 1, sizes.executor_one_caller, 30.0),
        Phase(
            "many-users",
            sizes.threads,
            [f"bench-{mode}-{tag}-{i}" for i in range(sizes.executor_users)],
            sizes.rounds,
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
        exchange.admin.fresh_rate_limits()
        warm = Executions(stubs).tasks(list(zip(warm_owners, warm_ids, strict=True)))
        run(warm, threads=sizes.threads, deadline_seconds=60, stop=stop)

        for phase in phases:
            if stop.is_set():
                break
            into.extend(_measure(bench, phase, with_floor=phase is phases[-1]))


@dataclass
class Tally:
    """What one side of a phase (the service or its floor) measured, added up over its rounds."""

    runs: list[Run] = field(default_factory=list)
    cpu: list[dict[str, Any]] = field(default_factory=list)
    orders: int = 0
    posts: int = 0
    filled: int = 0
    requests: Counter[str] = field(default_factory=Counter)
    client_order_ids: list[str] = field(default_factory=list)
    max_used: Counter[str] = field(default_factory=Counter)
    bans: int = 0
    wal_bytes: int = 0  # PostgreSQL's write-ahead log written during the rounds


def _measure(bench: Bench, phase: Phase, *, with_floor: bool) -> list[Scenario]:
    """Seed the phase's proposals (and its floor's), then run its rounds: a service round, then
    (``with_floor``) a floor round, and so on, so that each pair of rounds sees the same moment of
    the machine and the same database; afterwards check that every success is accounted for."""
    admin, mode = bench.exchange.admin, bench.mode
    planned = phase.rounds * phase.per_round
    owners = [phase.users[k % len(phase.users)] for k in range(planned)]
    prices = admin.prices()
    pairs = list(zip(owners, seed_proposals(bench.infra.admin_url, prices, owners), strict=True))
    floor_ids = seed_proposals(bench.infra.admin_url, prices, owners) if with_floor else []
    triples = [
        (user, pid, MARKETS[k % len(MARKETS)])
        for k, (user, pid) in enumerate(zip(owners if with_floor else [], floor_ids, strict=True))
    ]
    executions = Executions(bench.stubs)
    service, floor = Tally(), Tally()
    for r in range(phase.rounds):
        if bench.stop.is_set():
            break
        chunk = slice(r * phase.per_round, (r + 1) * phase.per_round)
        bench.say(
            f"execute-{mode} {phase.name}: round {r + 1}/{phase.rounds}, "
            f"{phase.per_round} proposals from {phase.threads} thread(s)"
        )
        _service_round(bench, phase, executions.tasks(pairs[chunk]), service)
        if with_floor and not bench.stop.is_set():
            bench.say(f"execute-{mode} {phase.name} floor: round {r + 1}/{phase.rounds}, {phase.per_round} tasks")
            _floor_round(bench, phase, triples[chunk], prices, floor)
    service.client_order_ids = executions.client_order_ids
    scenarios = [_scenario(bench, phase, service, kind="service")]
    if with_floor and not bench.stop.is_set():
        scenarios.append(_scenario(bench, phase, floor, kind="floor"))
    return scenarios


def _service_round(bench: Bench, phase: Phase, tasks: list[Task], tally: Tally) -> None:
    """One round through gRPC and the executor processes, in a fresh rate-limit minute."""
    groups: dict[str, Callable[[], float]] = {s.name: s.cpu_seconds for s in bench.services}
    groups["bitvavo-sim"] = bench.exchange.service.cpu_seconds
    groups["postgres"] = bench.infra.postgres_cpu_seconds
    bench.exchange.admin.fresh_rate_limits()
    before = _before(bench, phase)
    probe = CpuProbe(groups)
    probe.start()
    tally.runs.append(run(tasks, threads=phase.threads, deadline_seconds=phase.deadline_seconds, stop=bench.stop))
    tally.cpu.append(probe.stop())
    _count(bench, phase, tally, before)


def _floor_round(
    bench: Bench, phase: Phase, triples: Sequence[tuple[str, str, str]], prices: dict[str, Decimal], tally: Tally
) -> None:
    """One round of the floor (``bench.floors``), in a fresh rate-limit minute: no gRPC and no
    service code, the same threads and number of tasks, in as many processes as the service has."""
    bench.exchange.admin.fresh_rate_limits()
    before = _before(bench, phase)
    probe = CpuProbe({"bitvavo-sim": bench.exchange.service.cpu_seconds, "postgres": bench.infra.postgres_cpu_seconds})
    probe.start()
    specs = [
        floors.ExecutorSpec(
            url=bench.infra.role_url("executor"),
            mode=bench.mode,
            triples=tuple(triples[i :: floors.PROCESSES]),
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
    tally.cpu.append(probe.stop())
    tally.runs.append(measured)
    tally.client_order_ids.extend(sent)
    _count(bench, phase, tally, before)


def _before(bench: Bench, phase: Phase) -> tuple[dict[str, Any], int, int]:
    return (
        _exchange_state(bench.exchange.admin),
        _filled(bench.infra, bench.mode, phase.users),
        bench.infra.wal_position(),
    )


def _count(bench: Bench, phase: Phase, tally: Tally, before: tuple[dict[str, Any], int, int]) -> None:
    """Add what the round just run left at the simulator and in the database to ``tally`` (the
    rounds of the other side run in between, so each side counts its own rounds only)."""
    admin = bench.exchange.admin
    state, filled, wal = before
    tally.wal_bytes += bench.infra.wal_position() - wal
    after = _exchange_state(admin)
    tally.orders += after["orders"] - state["orders"]
    tally.posts += after["post_orders"] - state["post_orders"]
    tally.requests.update({name: n - state["requests"].get(name, 0) for name, n in after["requests"].items()})
    tally.filled += _filled(bench.infra, bench.mode, phase.users) - filled
    for identity, usage in admin.rate_limit_usage().items():
        kind = identity.split(":", 1)[0]
        tally.max_used[kind] = max(tally.max_used[kind], int(usage["used"]))
        tally.bans += int(usage["bannedUntil"] > 0)


def _scenario(bench: Bench, phase: Phase, tally: Tally, *, kind: str) -> Scenario:
    """One side of a phase as a scenario: its rounds pooled (``summary``) and one by one
    (``rounds``), and the checks that every success is one order (live) and one FILLED row."""
    mode = bench.mode
    measured = merge(tally.runs, planned=phase.rounds * phase.per_round, threads=phase.threads)
    ok = len(measured.ok)
    checks = [Check("no failed task", 0, sum(measured.failures.values()))]
    checks += _exchange_checks(
        bench.exchange.admin,
        mode,
        ok=ok,
        orders=tally.orders,
        posts=tally.posts,
        client_order_ids=tally.client_order_ids,
    )
    checks.append(Check("rate-limit bans at the simulator", 0, tally.bans))
    checks.append(Check(f"FILLED {mode} executions in the database = successes", ok, tally.filled))
    parameters: dict[str, Any] = {
        "client_threads": phase.threads,
        "users": len(phase.users),
        "rounds": phase.rounds,
        "per_round": phase.per_round,
        "deadline_seconds_per_round": phase.deadline_seconds,
    }
    # PostgreSQL's own cost that grows with its tables: the WAL per execution (index entries, and
    # whole pages written the first time each is touched after a checkpoint)
    extra: dict[str, Any] = {"WAL kB per execution": round(tally.wal_bytes / 1024 / ok, 1) if ok else None}
    if kind == "service":
        parameters |= {
            "executor_processes": PROCESSES,
            "amount_eur": str(AMOUNT_EUR),
            "markets": list(MARKETS),
            "principal": "scanner",
        }
        extra |= {
            "exchange requests per execution": {
                name: round(n / ok, 2) for name, n in sorted(tally.requests.items()) if n and ok
            },
            "most rate-limit weight used in one round": dict(tally.max_used),
        }
    else:
        parameters |= {"floor_processes": floors.PROCESSES, "statements": "bench/floors.py"}
    return Scenario(
        benchmark=f"execute-{mode}",
        name=phase.name,
        unit="execution",
        parameters=parameters,
        summary=measured.summary(),
        checks=checks,
        cpu=merge_cpu(tally.cpu),
        extra=extra,
        history=bench.history,
        kind=kind,
        rounds=[r.brief() for r in tally.runs],
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
    orders: int,
    posts: int,
    client_order_ids: list[str],
) -> list[Check]:
    """``orders`` and ``posts``: orders placed and POST /order requests received during the rounds."""
    if mode != "live":
        return [
            Check("orders placed at the simulator", 0, orders),
            Check("POST /order requests at the simulator", 0, posts),
        ]
    wanted = set(client_order_ids)
    matched = Counter(
        o["order"].get("clientOrderId") for o in admin.orders() if o["order"].get("clientOrderId") in wanted
    )
    return [
        Check("orders placed at the simulator = successes", ok, orders),
        Check("POST /order requests at the simulator = successes", ok, posts),
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
