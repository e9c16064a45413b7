"""Side by side with the source design: its algorithms as a baseline, driven by the same storms
as ours, in the same run on the same database.

The source design (the seed this project replaced) decided three things this project does
differently (docs/design.md#scheduler-leases-and-fencing, docs/design.md#budget-zero-overshoot,
docs/design.md#cooldown, docs/design.md#notional-caps say what we do instead); the baseline
implements them as the seed did:

* **job claim** — an optimistic ``UPDATE scan_jobs SET locked_by = me, lock_expires_at = now + 2 min
  WHERE job_id = … AND locked_by IS NULL``, a periodic cleanup that frees expired locks, and an
  unfenced finish (``UPDATE … WHERE job_id = …``). Ours: ``services.scanner.lease`` (leases with
  a fencing token; every write of a run goes through the fence).
* **budget check** — ``SELECT count(*)`` of the user's calls in the window, then, if below the
  limit, a separate ``INSERT``. Ours: the budget service's ReserveCall (count and insert in one
  transaction under the user's lock).
* **cooldown, anti-flip and caps** — read the user's recent executions, decide, insert and send,
  with no lock (storms: the hourly trade cap over three markets; the cooldown on one market; the
  anti-flip window on one market with buys and sells arriving together). Ours: the executor service's ExecuteProposal (live, orders counted at the
  simulator).

Every storm is the same for both sides: the same number of users, requests, client threads
(released together by a barrier), limits, and the same stalls — no sleep or delay is added to
the baseline only. For the job claims, the storm stalls every third claimed run of a round past
the lease (a paused or partitioned instance) on both sides, on a logical clock both sides read,
and lets it finish after the next round re-claimed the job; a job run finished twice for the same
due time is a double claim. For the budget, each user's requests arrive together; overshoot is
rows granted beyond the limit. For the executor, each user's proposals arrive together; extra
orders are orders at the simulator beyond what the rule allows.

Each storm runs ``Sizes.storm_runs`` times; the report gives every run and the totals.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import grpc
import psycopg
from oracle.budget.v1 import budget_service_pb2 as bpb
from oracle.budget.v1 import budget_service_pb2_grpc as bpb_grpc
from oracle.executor.v1 import executor_service_pb2 as epb
from oracle.executor.v1 import executor_service_pb2_grpc as epb_grpc
from python_bitvavo_api.bitvavo import Bitvavo

from bench import budget as budget_bench
from bench import executor as executor_bench
from bench.infra import Infra
from bench.load import Outcome, Task, run
from bench.sizes import Sizes
from services.scanner import repository as scanner_repository
from services.scanner.lease import LeaseLost, Leases
from shared.channel import open_channel
from shared.db import Database
from shared.errors import from_rpc_error
from sim.bitvavo import DEFAULT_TRADE_KEY, DEFAULT_TRADE_SECRET

SOURCE_TTL = timedelta(minutes=2)  # the source design's job lock TTL
OUR_LEASE_SECONDS = 60
ROUND_STEP = timedelta(minutes=3)  # logical time between rounds: past both the TTL and our lease
STALL_EVERY = 3  # every third claimed run of a round stalls past its lease (both sides)
RERUN_AFTER = timedelta(seconds=1)  # a finished job is due again next round
STORM_DEADLINE_SECONDS = 120.0


@dataclass
class StormResult:
    """One run of one storm, for one side."""

    storm: str
    side: str  # "ours" | "source design"
    run: int
    requests: int
    should_refuse: str
    not_refused: int
    seconds: float
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return round(self.requests / self.seconds, 1) if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "storm": self.storm,
            "side": self.side,
            "run": self.run,
            "requests": self.requests,
            "should_have_been_refused": self.should_refuse,
            "not_refused": self.not_refused,
            "seconds": round(self.seconds, 3),
            "requests_per_second": self.per_second,
            "detail": self.detail,
        }


# ====================================================================================== job claims


class DatabaseClock:
    """The database's clock (``oracle.clock()``), which every lease and due time is judged by;
    the storm moves it forward between rounds (``oracle.database_settings.clock_offset``, as the
    owner) and back when it ends. Both sides of the comparison read it."""

    def __init__(self, admin_url: str) -> None:
        self._conn = psycopg.connect(admin_url, autocommit=True)
        self._lock = threading.Lock()
        self.moved = timedelta(0)

    def now(self) -> datetime:
        with self._lock:
            row = self._conn.execute("SELECT oracle.clock()").fetchone()
        if row is None:
            raise RuntimeError("oracle.clock() returned no row")
        result: datetime = row[0]
        return result

    def advance(self, step: timedelta) -> None:
        with self._lock:
            self._conn.execute("UPDATE oracle.database_settings SET clock_offset = clock_offset + %s WHERE id", (step,))
        self.moved += step

    def close(self) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE oracle.database_settings SET clock_offset = clock_offset - %s WHERE id", (self.moved,)
            )
            self._conn.close()


@dataclass(frozen=True)
class Claimed:
    job_id: str
    slot: datetime  # the due time the claim ran the job for
    token: Any  # ours: the Lease; baseline: None


class _OurJobs:
    """Ours: ``services.scanner.lease`` (fenced leases) on the database's clock."""

    name = "ours"

    def __init__(self, infra: Infra, clock: DatabaseClock, instances: int) -> None:
        self._dbs = [
            Database(infra.role_url("scanner"), name=f"storm-ours-{i}", min_size=1, max_size=2)
            for i in range(instances)
        ]
        for db in self._dbs:
            db.open()
        self._leases = [
            Leases(db, instance=f"storm-ours-{i}", lease_seconds=OUR_LEASE_SECONDS) for i, db in enumerate(self._dbs)
        ]
        self._clock = clock

    def claim(self, instance: int) -> Claimed | None:
        got = self._leases[instance].claim_due(1)
        if not got:
            return None
        lease = got[0]
        if lease.job is None:
            raise RuntimeError("a claim returned a lease without its job")
        return Claimed(lease.job_id, lease.job.next_run_at, lease)

    def finish(self, instance: int, claimed: Claimed) -> bool:
        leases = self._leases[instance]
        try:
            with leases.fence.write(claimed.token) as (conn, _row):
                now = self._clock.now()
                scanner_repository.finish_job(
                    conn, job_id=claimed.job_id, interval=RERUN_AFTER, last_run_at=now, outcomes=[]
                )
        except LeaseLost:
            return False
        return True

    def cleanup(self) -> None:
        """Ours needs none: an expired lease is claimable as it is."""

    def close(self) -> None:
        for db in self._dbs:
            db.close()


class _SourceJobs:
    """The source design: optimistic UPDATE … WHERE locked_by IS NULL, 2-minute TTL, periodic
    cleanup, unfenced finish. (As the owner: the source design had no row-level security.)"""

    name = "source design"

    def __init__(self, infra: Infra, clock: DatabaseClock, instances: int, users: str) -> None:
        self._conns = [psycopg.connect(infra.admin_url, autocommit=True) for _ in range(instances)]
        self._clock = clock
        self._users = users  # LIKE pattern of this storm's users

    def claim(self, instance: int) -> Claimed | None:
        conn, now = self._conns[instance], self._clock.now()
        while True:
            candidates = conn.execute(
                "SELECT job_id FROM oracle.scan_jobs WHERE user_id LIKE %s AND NOT paused AND next_run_at <= %s"
                " AND locked_by IS NULL ORDER BY next_run_at LIMIT 4",
                (self._users, now),
            ).fetchall()
            if not candidates:
                return None
            for (job_id,) in candidates:
                row = conn.execute(
                    "UPDATE oracle.scan_jobs SET locked_by = %s, lock_expires_at = %s"
                    " WHERE job_id = %s AND locked_by IS NULL RETURNING next_run_at",
                    (f"source-{instance}", now + SOURCE_TTL, job_id),
                ).fetchone()
                if row is not None:  # won the optimistic race
                    return Claimed(str(job_id), row[0], None)

    def finish(self, instance: int, claimed: Claimed) -> bool:
        now = self._clock.now()
        cur = self._conns[instance].execute(
            "UPDATE oracle.scan_jobs SET next_run_at = %s, last_run_at = %s, locked_by = NULL,"
            " lock_expires_at = NULL WHERE job_id = %s",
            (now + RERUN_AFTER, now, claimed.job_id),
        )
        return cur.rowcount == 1

    def cleanup(self) -> None:
        self._conns[0].execute(
            "UPDATE oracle.scan_jobs SET locked_by = NULL, lock_expires_at = NULL"
            " WHERE user_id LIKE %s AND lock_expires_at < %s",
            (self._users, self._clock.now()),
        )

    def close(self) -> None:
        for conn in self._conns:
            conn.close()


def _seed_storm_jobs(admin_url: str, prefix: str, jobs: int, due: datetime) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        # only this storm's jobs may be due: park every other job (ours claims across users)
        conn.execute("UPDATE oracle.scan_jobs SET paused = true WHERE NOT paused")
        conn.execute(
            "INSERT INTO oracle.scan_jobs (job_id, user_id, markets, interval_seconds, analyst, next_run_at,"
            " created_at) SELECT gen_random_uuid(), %s || (g %% 50), ARRAY['BTC-EUR'], 1, 'rules', %s, %s"
            " FROM generate_series(1, %s) g",
            (prefix, due, due, jobs),
        )


def job_storm(infra: Infra, sizes: Sizes, side_name: str, run_no: int) -> StormResult:
    """``sizes.storm_rounds`` rounds of ``sizes.storm_instances`` instances claiming
    ``sizes.storm_jobs`` jobs; every third claimed run of a round stalls into the next round."""
    clock = DatabaseClock(infra.admin_url)
    prefix = f"storm-{'ours' if side_name == 'ours' else 'src'}-{run_no}-{uuid.uuid4().hex[:6]}-"
    _seed_storm_jobs(infra.admin_url, prefix, sizes.storm_jobs, clock.now() - timedelta(seconds=1))
    instances = sizes.storm_instances
    side: _OurJobs | _SourceJobs = (
        _OurJobs(infra, clock, instances) if side_name == "ours" else _SourceJobs(infra, clock, instances, prefix + "%")
    )
    finishes: Counter[tuple[str, datetime]] = Counter()
    claims = 0
    late_written = 0
    pending: list[tuple[int, Claimed]] = []
    busy = 0.0
    lock = threading.Lock()
    try:
        for _ in range(sizes.storm_rounds):
            stalled: list[tuple[int, Claimed]] = []
            counter = itertools.count(1)

            def worker(instance: int, stalled: list[tuple[int, Claimed]] = stalled, counter: Any = counter) -> None:
                nonlocal claims
                while (claimed := side.claim(instance)) is not None:
                    with lock:
                        claims += 1
                        k = next(counter)
                    if k % STALL_EVERY == 0:
                        with lock:
                            stalled.append((instance, claimed))
                    elif side.finish(instance, claimed):
                        with lock:
                            finishes[(claimed.job_id, claimed.slot)] += 1

            t0 = time.perf_counter()
            _together(worker, instances)
            # the runs stalled in the previous round wake up now, after this round re-claimed them
            for instance, claimed in pending:
                if side.finish(instance, claimed):
                    late_written += 1
                    finishes[(claimed.job_id, claimed.slot)] += 1
            busy += time.perf_counter() - t0
            pending = stalled
            clock.advance(ROUND_STEP)
            side.cleanup()
        for instance, claimed in pending:
            if side.finish(instance, claimed):
                finishes[(claimed.job_id, claimed.slot)] += 1
    finally:
        side.close()
        clock.close()  # the database's clock back where it was
        with psycopg.connect(infra.admin_url, autocommit=True) as conn:
            conn.execute("UPDATE oracle.scan_jobs SET paused = true WHERE user_id LIKE %s", (prefix + "%",))
    doubles = sum(n - 1 for n in finishes.values() if n > 1)
    return StormResult(
        storm="job claims",
        side=side_name,
        run=run_no,
        requests=claims,
        should_refuse="double claims (a due run written twice)",
        not_refused=doubles,
        seconds=busy,
        detail={
            "jobs": sizes.storm_jobs,
            "instances": instances,
            "rounds": sizes.storm_rounds,
            "stalled_every": STALL_EVERY,
            "late_finishes_written": late_written,
        },
    )


def _together(worker: Callable[[int], None], threads: int) -> None:
    """Run ``worker(i)`` on ``threads`` threads released together; re-raise the first error."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            barrier.wait(timeout=60)
            worker(i)
        except BaseException as exc:  # reported to the caller
            errors.append(exc)

    pool = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]


# ====================================================================================== budget


def _storm_tasks(users: Sequence[str], per_user: int, make: Callable[[str], Task]) -> list[Task]:
    """Each user's requests next to each other, so the threads hit one user at the same time."""
    return [make(u) for u in users for _ in range(per_user)]


def budget_storm(infra: Infra, sizes: Sizes, side: str, run_no: int, stubs: Sequence[Any]) -> StormResult:
    """``storm_users`` users, ``storm_requests`` reservations each arriving together, limit
    ``storm_limit`` calls per hour; overshoot = granted rows beyond the limit."""
    users = [f"storm-b-{side[:3]}-{run_no}-{uuid.uuid4().hex[:6]}-{i}" for i in range(sizes.storm_users)]
    limit = sizes.storm_limit
    conns: list[psycopg.Connection[Any]] = []
    local = threading.local()
    lock = threading.Lock()

    def conn() -> psycopg.Connection[Any]:
        if not hasattr(local, "conn"):
            c = psycopg.connect(infra.role_url("budget"), autocommit=True)
            with lock:
                conns.append(c)
            local.conn = c
        result: psycopg.Connection[Any] = local.conn
        return result

    def ours(user: str) -> Task:
        stub = stubs[hash(user) % len(stubs)]
        request = bpb.ReserveCallRequest(
            user_id=user,
            purpose="storm",
            model=budget_bench.MODEL,
            estimated_prompt_tokens=900,
            requested_max_tokens=400,
        )

        def task() -> Outcome:
            try:
                stub.ReserveCall(request, timeout=budget_bench.CALL_TIMEOUT_SECONDS)
            except grpc.RpcError as exc:
                if exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
                    return Outcome()  # refused: answered correctly
                raise
            return Outcome()

        return task

    def source(user: str) -> Task:
        def task() -> Outcome:
            c = conn()
            c.execute("SELECT set_config('app.user_id', %s, false)", (user,))
            now = datetime.now(UTC)
            row = c.execute(
                "SELECT count(*) FROM oracle.gpt_usage_log WHERE user_id = %s AND status <> 'released'"
                " AND reserved_at > %s",
                (user, now - timedelta(hours=1)),
            ).fetchone()
            if row is not None and int(row[0]) >= limit:
                return Outcome()  # refused
            c.execute(
                "INSERT INTO oracle.gpt_usage_log (reservation_id, user_id, purpose, model, status, max_tokens,"
                " estimated_tokens, estimated_cost_micros, reserved_at, expires_at)"
                " VALUES (%s, %s, 'storm', 'gpt-4o-mini', 'reserved', 400, 1300, 500, %s, %s)",
                (str(uuid.uuid4()), user, now, now + timedelta(minutes=5)),
            )
            return Outcome()

        return task

    make = ours if side == "ours" else source
    tasks = _storm_tasks(users, sizes.storm_requests, make)
    try:
        measured = run(tasks, threads=sizes.threads, deadline_seconds=STORM_DEADLINE_SECONDS, stop=threading.Event())
    finally:
        for c in conns:
            c.close()
    with psycopg.connect(infra.admin_url, autocommit=True) as admin:
        granted: dict[str, int] = {
            str(user): int(n)
            for user, n in admin.execute(
                "SELECT user_id, count(*) FROM oracle.gpt_usage_log WHERE user_id = ANY(%s) GROUP BY user_id",
                (users,),
            ).fetchall()
        }
    overshoot = sum(max(0, int(n) - limit) for n in granted.values())
    return StormResult(
        storm="budget check",
        side=side,
        run=run_no,
        requests=len(measured.samples),
        should_refuse=f"reservations beyond {limit} per user and hour (overshoot)",
        not_refused=overshoot,
        seconds=measured.wall_seconds,
        detail={
            "users": len(users),
            "requests_per_user": sizes.storm_requests,
            "limit": limit,
            "granted": sum(int(n) for n in granted.values()),
            "failed": dict(measured.failures),
        },
    )


# ====================================================================================== executor


@dataclass(frozen=True)
class Rule:
    """One executor storm: which rule it provokes and what it allows per user."""

    name: str
    hourly_cap: int
    cooldown_seconds: int
    anti_flip_seconds: int
    markets: tuple[str, ...]
    sides: tuple[str, ...]  # a user's proposals take these sides in turn

    def violations(self, orders: Counter[str]) -> int:
        """Orders of one user (by side) that the rule should have refused."""
        total = sum(orders.values())
        if self.anti_flip_seconds:  # one market: whichever side went second should not have
            return min(orders["buy"], orders["sell"])
        allowed = 1 if self.cooldown_seconds else self.hourly_cap  # cooldown: one market
        return max(0, total - allowed)

    @property
    def refused(self) -> str:
        if self.anti_flip_seconds:
            return "orders on the opposite side within the window (the later side's)"
        allowed = 1 if self.cooldown_seconds else self.hourly_cap
        return f"orders beyond {allowed} per user (extra orders)"


def rules(sizes: Sizes) -> list[Rule]:
    cap = sizes.storm_limit
    return [
        Rule("hourly trade cap", cap, 0, 0, executor_bench.MARKETS, ("buy",)),
        Rule("cooldown", 1000, 3600, 0, ("BTC-EUR",), ("buy",)),
        Rule("anti-flip", 1000, 0, 3600, ("BTC-EUR",), ("buy", "sell")),
    ]


def _policy_for(rule: Rule) -> Callable[[str], epb.Policy]:
    def make(user_id: str) -> epb.Policy:
        p = executor_bench.policy(user_id)
        p.hourly_trade_cap = rule.hourly_cap
        p.cooldown.seconds = rule.cooldown_seconds
        p.anti_flip_window.seconds = rule.anti_flip_seconds
        return p

    return make


def executor_storm(
    infra: Infra,
    sizes: Sizes,
    *,
    exchange: executor_bench.Exchange,
    rule: Rule,
    side: str,
    run_no: int,
    operator: epb_grpc.ExecutorServiceStub,
    stubs: Sequence[epb_grpc.ExecutorServiceStub],
) -> StormResult:
    """``storm_users`` users, ``storm_requests`` proposals each arriving together; not refused =
    orders at the simulator that ``rule`` should have refused (:meth:`Rule.violations`)."""
    users = [f"storm-x-{side[:3]}-{run_no}-{uuid.uuid4().hex[:6]}-{i}" for i in range(sizes.storm_users)]
    owners = [u for u in users for _ in range(sizes.storm_requests)]
    prices = exchange.admin.prices()
    proposals = executor_bench.seed_proposals(infra.admin_url, prices, owners, markets=rule.markets, sides=rule.sides)
    market_of = {pid: rule.markets[k % len(rule.markets)] for k, pid in enumerate(proposals)}
    side_of = {pid: rule.sides[k % len(rule.sides)] for k, pid in enumerate(proposals)}
    cids: dict[str, list[tuple[str, str]]] = {u: [] for u in users}  # (clientOrderId, side)
    refusals: Counter[str] = Counter()
    lock = threading.Lock()
    pairs = list(zip(owners, proposals, strict=True))
    if "sell" in rule.sides:  # both sides start from a position of their own, bought long ago
        _positions_bought_earlier(infra, exchange, users, rule.markets[0], operator=operator, stub=stubs[0])
    if side == "ours":
        executor_bench.set_policies(operator, users, _policy_for(rule))
        tasks = _ours_executions(stubs, pairs, refusals)
    else:
        tasks = _source_executions(
            infra,
            exchange,
            rule=rule,
            pairs=pairs,
            market_of=market_of,
            side_of=side_of,
            cids=cids,
            refusals=refusals,
            lock=lock,
        )
    exchange.admin.fresh_rate_limits()
    conns_before = exchange.admin.order_count()
    measured = run(tasks, threads=sizes.threads, deadline_seconds=STORM_DEADLINE_SECONDS, stop=threading.Event())
    if side == "ours":
        with psycopg.connect(infra.admin_url, autocommit=True) as admin:
            for user, cid, order_side in admin.execute(
                "SELECT user_id, client_order_id::text, side FROM oracle.trade_executions WHERE proposal_id = ANY(%s)",
                (proposals,),
            ).fetchall():
                cids[user].append((cid, str(order_side)))
    at_exchange = Counter(o["order"].get("clientOrderId") for o in exchange.admin.orders())
    orders: dict[str, Counter[str]] = {}
    for user, sent in cids.items():
        orders[user] = Counter()
        for cid, order_side in sent:
            orders[user][order_side] += at_exchange[cid]
    extra = sum(rule.violations(by_side) for by_side in orders.values())
    return StormResult(
        storm=f"executor: {rule.name}",
        side=side,
        run=run_no,
        requests=len(measured.samples),
        should_refuse=rule.refused,
        not_refused=extra,
        seconds=measured.wall_seconds,
        detail={
            "users": len(users),
            "proposals_per_user": sizes.storm_requests,
            "orders": sum(sum(c.values()) for c in orders.values()),
            "orders_added_at_exchange": exchange.admin.order_count() - conns_before,
            "failed": dict(measured.failures),
            "refused_by": dict(refusals),
        },
    )


POSITION_EUR = Decimal("100.00")


def _positions_bought_earlier(
    infra: Infra,
    exchange: executor_bench.Exchange,
    users: Sequence[str],
    market: str,
    *,
    operator: epb_grpc.ExecutorServiceStub,
    stub: epb_grpc.ExecutorServiceStub,
) -> None:
    """Give every user a position to sell from: one buy of POSITION_EUR through ExecuteProposal
    (so the user's own books hold it), then moved two hours into the past, so that neither the
    cooldown, the anti-flip window nor the hourly cap counts it: the storm alone decides which
    side goes first. The same for both sides of the comparison."""
    executor_bench.set_policies(operator, users)
    prices = exchange.admin.prices()
    ids = executor_bench.seed_proposals(infra.admin_url, prices, list(users), markets=(market,), amount=POSITION_EUR)
    exchange.admin.fresh_rate_limits()
    for user, pid in zip(users, ids, strict=True):
        execution = stub.ExecuteProposal(
            epb.ExecuteProposalRequest(user_id=user, proposal_id=pid), timeout=executor_bench.CALL_TIMEOUT_SECONDS
        ).execution
        if execution.status != epb.EXECUTION_STATUS_FILLED:
            raise RuntimeError(f"the position buy of {user} ended {epb.ExecutionStatus.Name(execution.status)}")
    with psycopg.connect(infra.admin_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE oracle.trade_executions SET claimed_at = claimed_at - interval '2 hours',"
            " submitting_at = submitting_at - interval '2 hours' WHERE proposal_id = ANY(%s)",
            (ids,),
        )


def _failed_checks(exc: grpc.RpcError) -> list[str]:
    """The reasons of a FAILED_PRECONDITION answer (every failed check it lists)."""
    try:
        report = from_rpc_error(exc)
    except Exception:  # an answer we cannot decode is still a refusal
        return ["UNDECODED"]
    return [report.reason or "FAILED_PRECONDITION"]


def _ours_executions(
    stubs: Sequence[epb_grpc.ExecutorServiceStub], pairs: Sequence[tuple[str, str]], refusals: Counter[str]
) -> list[Task]:
    lock = threading.Lock()

    def make(k: int, user: str, pid: str) -> Task:
        stub = stubs[k % len(stubs)]
        request = epb.ExecuteProposalRequest(user_id=user, proposal_id=pid)

        def task() -> Outcome:
            try:
                stub.ExecuteProposal(request, timeout=executor_bench.CALL_TIMEOUT_SECONDS)
            except grpc.RpcError as exc:
                if exc.code() is grpc.StatusCode.FAILED_PRECONDITION:  # refused by a rule: a right answer
                    with lock:
                        refusals.update(_failed_checks(exc))
                    return Outcome()
                raise
            return Outcome()

        return task

    return [make(k, u, p) for k, (u, p) in enumerate(pairs)]


def _source_executions(
    infra: Infra,
    exchange: executor_bench.Exchange,
    *,
    rule: Rule,
    pairs: Sequence[tuple[str, str]],
    market_of: dict[str, str],
    side_of: dict[str, str],
    cids: dict[str, list[tuple[str, str]]],
    refusals: Counter[str],
    lock: threading.Lock,
) -> list[Task]:
    """The source design: read the user's recent executions, decide, insert, send — no lock."""
    local = threading.local()
    config = {"restUrl": exchange.url, "apikey": DEFAULT_TRADE_KEY, "apisecret": DEFAULT_TRADE_SECRET, "timeout": 30}

    def parts() -> tuple[psycopg.Connection[Any], Bitvavo]:
        if not hasattr(local, "conn"):
            local.conn = psycopg.connect(infra.admin_url, autocommit=True)
            local.sdk = Bitvavo(config)
        return local.conn, local.sdk

    def make(user: str, pid: str) -> Task:
        market, order_side = market_of[pid], side_of[pid]
        opposite = "sell" if order_side == "buy" else "buy"

        def task() -> Outcome:
            conn, sdk = parts()
            now = datetime.now(UTC)
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE claimed_at > %s), max(claimed_at) FILTER (WHERE market = %s),"
                " max(claimed_at) FILTER (WHERE market = %s AND side = %s)"
                " FROM oracle.trade_executions WHERE user_id = %s AND mode = 'live' AND status <> 'FAILED'",
                (now - timedelta(hours=1), market, market, opposite, user),
            ).fetchone()
            if row is None:
                raise RuntimeError("an aggregate returned no row")
            last_hour, last_on_market, last_opposite = int(row[0]), row[1], row[2]
            refused = ""
            if last_hour >= rule.hourly_cap:
                refused = "TRADE_CAP"
            elif rule.cooldown_seconds and last_on_market is not None:
                if last_on_market > now - timedelta(seconds=rule.cooldown_seconds):
                    refused = "COOLDOWN"
            elif rule.anti_flip_seconds and last_opposite is not None:
                if last_opposite > now - timedelta(seconds=rule.anti_flip_seconds):
                    refused = "ANTI_FLIP"
            if refused:
                with lock:
                    refusals[refused] += 1
                return Outcome()
            execution_id, cid = str(uuid.uuid4()), str(uuid.uuid4())
            conn.execute(
                "INSERT INTO oracle.trade_executions (execution_id, user_id, proposal_id, mode, market, side,"
                " amount_quote, status, client_order_id, principal, preflight, claimed_at, updated_at)"
                " VALUES (%s, %s, %s, 'live', %s, %s, %s, 'SUBMITTING', %s, 'scanner', '{}', %s, %s)",
                (execution_id, user, pid, market, order_side, executor_bench.AMOUNT_EUR, cid, now, now),
            )
            answer = sdk.placeOrder(
                market,
                order_side,
                "market",
                {
                    "amountQuote": str(executor_bench.AMOUNT_EUR),
                    "clientOrderId": cid,
                    "operatorId": int(executor_bench.OPERATOR_ID),
                },
            )
            with lock:
                cids[user].append((cid, order_side))
            status = "FILLED" if "orderId" in answer else "FAILED"
            conn.execute(
                "UPDATE oracle.trade_executions SET status = %s, updated_at = %s WHERE execution_id = %s",
                (status, datetime.now(UTC), execution_id),
            )
            return Outcome()

        return task

    return [make(u, p) for u, p in pairs]


# ====================================================================================== all


def run_storms(
    infra: Infra,
    sizes: Sizes,
    exchange: executor_bench.Exchange | None,
    *,
    stop: threading.Event,
    say: Callable[[str], None],
) -> list[StormResult]:
    """Every storm, ours and the source design's, ``sizes.storm_runs`` times."""
    results: list[StormResult] = []
    for run_no in range(1, sizes.storm_runs + 1):
        for side in ("ours", "source design"):
            if stop.is_set():
                return results
            say(f"storm {run_no}/{sizes.storm_runs}: job claims, {side}")
            results.append(job_storm(infra, sizes, side, run_no))
    with infra.group(), ExitStack() as channels:
        env = {
            **budget_bench.service_env(infra),
            "BUDGET_DEFAULT_HOURLY_CALLS": str(sizes.storm_limit),
            "BUDGET_DEFAULT_DAILY_CALLS": str(sizes.storm_limit),
        }
        say("storms: starting 2 budget processes with the storm's limit")
        services = infra.services("services.budget", [env] * 2, name="budget-storm")
        stubs = [
            bpb_grpc.BudgetServiceStub(channels.enter_context(open_channel(s.target, infra.tokens.scanner)))
            for s in services
        ]
        for run_no in range(1, sizes.storm_runs + 1):
            for side in ("ours", "source design"):
                if stop.is_set():
                    return results
                say(f"storm {run_no}/{sizes.storm_runs}: budget check, {side}")
                results.append(budget_storm(infra, sizes, side, run_no, stubs))
    if exchange is None:
        return results
    with infra.group(), ExitStack() as channels:
        say("storms: starting 2 live executor processes")
        services = infra.services(
            "services.executor",
            [executor_bench.service_env(infra, exchange.url, "live")] * 2,
            name="executor-storm",
        )
        operator = epb_grpc.ExecutorServiceStub(
            channels.enter_context(open_channel(services[0].target, infra.tokens.operator))
        )
        stubs_x = [
            epb_grpc.ExecutorServiceStub(channels.enter_context(open_channel(s.target, infra.tokens.scanner)))
            for s in services
        ]
        executor_bench.set_account_cap(operator, executor_bench.ACCOUNT_EUR)
        exchange.admin.set_balance("BTC", "1000")  # the anti-flip storm sells too
        for rule in rules(sizes):
            for run_no in range(1, sizes.storm_runs + 1):
                for side in ("ours", "source design"):
                    if stop.is_set():
                        return results
                    say(f"storm {run_no}/{sizes.storm_runs}: {rule.name}, {side}")
                    results.append(
                        executor_storm(
                            infra,
                            sizes,
                            exchange=exchange,
                            rule=rule,
                            side=side,
                            run_no=run_no,
                            operator=operator,
                            stubs=stubs_x,
                        )
                    )
    return results
