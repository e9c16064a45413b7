"""The floors: what each measured path would cost with no gRPC and no service code at all.

A floor issues the statements the path's guarantees need, directly with psycopg (one persistent
connection per client thread, as the service's own least-privilege role, row-level security on),
and for live trading one order through the official SDK to the simulator. It runs in the same
benchmark run, against the same database (same history), with the same client threads and the
same closed loop as the service measurement it is the floor of, so ``ratio = service / floor`` says
how much of the possible throughput the service achieves. The client threads are split over as
many processes as the service has (:func:`run_in_processes`), so the floor is not held back by
one interpreter's lock where the service has two.

* **budget** — the reservation transaction (the user lock with the clock; limits and the windowed
  usage count in one statement; the insert with its audit event in one statement) then the commit
  transaction (row lock with the clock; compare-and-set to committed with its audit event in one
  statement): the same SQL as ``services.budget``, issued directly.
* **paper** — an unlocked read of every user's books and the paper wallet; then one transaction:
  the user set and the account lock (shared) and user lock taken in one statement, the
  existing-execution gate, policy, proposal, the user's figures and the loss breaker's (trading
  state, positions, realized P&L, peak); then the account row locked with the account's notional
  and in-flight sums (``oracle.lock_account_for_claim``, one round trip), the claim written as
  SUBMITTING with its claimed and SUBMITTING events (one statement); then the answer's
  transaction (FILLED, the fill and its book entry, audit event).
* **live** — the same claim-and-SUBMITTING transaction, one ``POST /order`` through the SDK to the
  simulator (clientOrderId and operatorId as production sends them), the answer's transaction.

The statements are the project's current ones (read from ``services/executor/repository.py`` and
``services/budget/repository.py`` when this was written, written out here so the floor uses no
service code), including the SECURITY DEFINER functions the executor reads account-wide figures
through, in the fewest round trips and the shortest hold of the account row those statements
allow. When the service's statements get leaner, update these to match: the floor is "the same
SQL", not a fixed target.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from python_bitvavo_api.bitvavo import Bitvavo

from bench.load import Outcome, Run, Task, run
from shared.ids import new_id

ACCOUNT_TRADING = 4  # shared.db.locks.LockSpace: the numbers are part of the database contract
USER_TRADING = 1
USER_BUDGET = 3
COUNTING = "oracle.execution_counts(status, filled_amount)"


class Connections:
    """One connection per client thread, all closed by :meth:`close`. ``opened`` connections are
    opened at once (before the measurement starts, as a service's pool is); a thread takes one
    on its first use, or opens its own when none is left."""

    def __init__(self, url: str, *, opened: int = 0) -> None:
        self._url = url
        self._local = threading.local()
        self._lock = threading.Lock()
        self._spare = [psycopg.connect(url, autocommit=True) for _ in range(opened)]
        self._all: list[psycopg.Connection[Any]] = list(self._spare)

    def get(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None:
            with self._lock:
                conn = self._spare.pop() if self._spare else None
            if conn is None:
                conn = psycopg.connect(self._url, autocommit=True)
                with self._lock:
                    self._all.append(conn)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


_AUDIT = "oracle.append_audit_event(%s, %s, %s, %s, %s)"
_BUDGET_COLUMNS = (
    "reservation_id::text, user_id::text, purpose, model, status, max_tokens, estimated_tokens,"
    " estimated_cost_micros, prompt_tokens, completion_tokens, cost_micros, reserved_at, expires_at"
)


def _audit_params(service: str, kind: str, subject: str, payload: dict[str, Any]) -> tuple[Any, ...]:
    return (service, kind, subject, "scanner", Jsonb(payload))


@contextmanager
def user_transaction(conn: psycopg.Connection[Any], user_id: str) -> Iterator[None]:
    """A transaction for ``user_id`` on an autocommit connection: BEGIN and the user's setting in
    one round trip, COMMIT at the end (ROLLBACK on an error), as ``shared.db.Database.transaction``
    runs every transaction."""
    conn.execute(sql.SQL("BEGIN; SELECT set_config('app.user_id', {}, true)").format(sql.Literal(user_id)))
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _audit(conn: psycopg.Connection[Any], service: str, kind: str, subject: str, payload: dict[str, Any]) -> None:
    conn.execute(f"SELECT {_AUDIT}", _audit_params(service, kind, subject, payload))


# ------------------------------------------------------------------------------------ budget


def budget_task(conns: Connections, user_id: str) -> Task:
    """Reserve then commit, as ``services.budget``'s ledger does it, without the service: the lock
    statement (which reads the clock), limits and usage in one statement, the insert and its audit
    event in one statement; then the row lock (with the clock), and the update and its audit event
    in one statement."""

    def task() -> Outcome:
        conn = conns.get()
        reservation_id = new_id()
        t0 = time.perf_counter()
        with user_transaction(conn, user_id):
            ((_, now),) = conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s)), oracle.clock()", (USER_BUDGET, user_id)
            ).fetchall()
            day_start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            conn.execute(
                "SELECT l.daily_calls, l.hourly_calls, l.daily_tokens, l.daily_cost_micros, u.*"
                " FROM (SELECT count(*) FILTER (WHERE reserved_at >= %(day_start)s) AS daily_calls,"
                "   count(*) FILTER (WHERE reserved_at > %(hour_start)s) AS hourly_calls,"
                "   COALESCE(sum(CASE WHEN status = 'committed' THEN prompt_tokens + completion_tokens"
                "     ELSE estimated_tokens END) FILTER (WHERE reserved_at >= %(day_start)s), 0) AS daily_tokens,"
                "   COALESCE(sum(CASE WHEN status = 'committed' THEN cost_micros ELSE estimated_cost_micros END)"
                "     FILTER (WHERE reserved_at >= %(day_start)s), 0) AS daily_cost_micros"
                "   FROM oracle.gpt_usage_log"
                "   WHERE user_id = %(user_id)s AND status <> 'released'"
                "     AND reserved_at >= LEAST(%(day_start)s, %(hour_start)s)) u"
                " LEFT JOIN oracle.budget_limits l ON l.user_id = %(user_id)s",
                {"user_id": user_id, "day_start": day_start, "hour_start": now - timedelta(hours=1)},
            ).fetchone()
            conn.execute(
                "WITH changed AS (INSERT INTO oracle.gpt_usage_log (reservation_id, user_id, purpose, model, status,"  # noqa: S608 - constant fragments only
                " max_tokens, estimated_tokens, estimated_cost_micros, reserved_at, expires_at)"
                " VALUES (%s, %s, 'bench', 'gpt-4o-mini', 'reserved', 400, 1300, 500, %s, %s)"
                f" RETURNING {_BUDGET_COLUMNS}) SELECT changed.*, {_AUDIT} FROM changed",
                (
                    reservation_id,
                    user_id,
                    now,
                    now + timedelta(minutes=5),
                    *_audit_params("budget", "budget.reserved", reservation_id, {"max_tokens": 400}),
                ),
            ).fetchone()
        t1 = time.perf_counter()
        with user_transaction(conn, user_id):
            conn.execute(
                f"SELECT {_BUDGET_COLUMNS}, oracle.clock() FROM oracle.gpt_usage_log"  # noqa: S608 - constant fragments only
                " WHERE user_id = %s AND reservation_id = %s FOR UPDATE",
                (user_id, reservation_id),
            ).fetchone()
            conn.execute(
                "WITH changed AS (UPDATE oracle.gpt_usage_log SET status = 'committed', prompt_tokens = 850,"  # noqa: S608 - constant fragments only
                " completion_tokens = 300, cost_micros = 450, committed_at = oracle.clock()"
                f" WHERE reservation_id = %s AND status = 'reserved' RETURNING {_BUDGET_COLUMNS})"
                f" SELECT changed.*, {_AUDIT} FROM changed",
                (reservation_id, *_audit_params("budget", "budget.committed", reservation_id, {"prompt_tokens": 850})),
            ).fetchone()
        t2 = time.perf_counter()
        return Outcome(parts={"reserve": t1 - t0, "commit": t2 - t1})

    return task


# ------------------------------------------------------------------------------------ executor


def _claim_and_submitting(
    conn: psycopg.Connection[Any], *, mode: str, user_id: str, proposal_id: str, market: str, amount: Decimal
) -> tuple[str, str]:
    """The check-and-claim and the move to SUBMITTING, in one transaction: (execution id,
    clientOrderId). The same reads as the service, ordered so that the account row (the one lock
    every claim of the account queues on) is held only for the account-wide reads, the claim and
    its audit events; the claim is written as SUBMITTING directly."""
    now = datetime.now(UTC)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    execution_id = new_id()
    client_order_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{user_id}/{proposal_id}"))
    # before any lock: every user's books (the breaker's account figures) and, in paper mode, the
    # paper wallet (the balance)
    with user_transaction(conn, user_id):
        conn.execute("SELECT * FROM oracle.account_book(%s, %s)", (mode, day_start)).fetchall()
        if mode == "paper":
            conn.execute("SELECT eur_spent, base_held FROM oracle.paper_wallet(%s)", (market,)).fetchone()
    with conn.transaction():
        conn.execute(
            "SELECT set_config('app.user_id', %s, true), pg_advisory_xact_lock_shared(%s, 0),"
            " pg_advisory_xact_lock(%s, hashtext(%s))",
            (user_id, ACCOUNT_TRADING, USER_TRADING, user_id),
        )
        conn.execute("SELECT 1 FROM oracle.trade_executions WHERE proposal_id = %s", (proposal_id,)).fetchone()
        conn.execute(
            "SELECT user_id, version, allowed_markets::text[], min_order_eur, max_order_eur, min_confidence,"
            " cooldown_seconds, anti_flip_seconds, daily_trade_cap, hourly_trade_cap, daily_notional_cap_eur,"
            " price_guard_pct, auto_execute, trading_enabled FROM oracle.trading_policies"
        ).fetchone()
        conn.execute(
            "SELECT * FROM oracle.trade_proposals WHERE proposal_id = %s AND expires_at > %s", (proposal_id, now)
        ).fetchone()
        # the user's own figures, under the user's lock alone: a window-bounded index range
        conn.execute(
            "SELECT max(claimed_at) FILTER (WHERE market = %(market)s),"  # noqa: S608 - constant fragments only
            " max(claimed_at) FILTER (WHERE market = %(market)s AND side = 'sell'),"
            " count(*) FILTER (WHERE claimed_at >= %(day)s), count(*) FILTER (WHERE claimed_at >= %(hour)s),"
            " COALESCE(sum(amount_quote) FILTER (WHERE claimed_at >= %(day)s), 0)"
            f" FROM oracle.trade_executions WHERE claimed_at >= %(day)s AND mode = %(mode)s AND {COUNTING}",
            {
                "market": market,
                "day": min(day_start, now - timedelta(hours=1)),
                "hour": now - timedelta(hours=1),
                "mode": mode,
            },
        ).fetchone()
        # the loss breaker's per-user reads (a BUY): trading state, positions, realized P&L, peak
        conn.execute("SELECT * FROM oracle.trading_states WHERE mode = %s", (mode,)).fetchone()
        conn.execute(
            "SELECT market::text, quantity, cost_eur, realized_pnl_eur, fills FROM oracle.book_positions"
            " WHERE mode = %s ORDER BY market",
            (mode,),
        ).fetchall()
        conn.execute(
            "SELECT COALESCE(sum(realized_pnl_eur), 0) FROM oracle.book_entries WHERE mode = %s AND filled_at >= %s",
            (mode, day_start),
        ).fetchone()
        conn.execute(
            "INSERT INTO oracle.trading_states AS s (user_id, mode, peak_pnl_eur) VALUES (%s, %s, 0)"
            " ON CONFLICT (user_id, mode) DO UPDATE SET peak_pnl_eur = GREATEST(s.peak_pnl_eur, EXCLUDED.peak_pnl_eur)"
            " RETURNING peak_pnl_eur",
            (user_id, mode),
        ).fetchone()
        # the account row, locked until commit, with the account-wide figures (one round trip)
        conn.execute(
            "SELECT * FROM oracle.lock_account_for_claim(%s, 'buy', NULL, %s, %s, %s)",
            (mode, day_start, day_start + timedelta(1), now),
        ).fetchone()
        conn.execute(
            "WITH claim AS (INSERT INTO oracle.trade_executions (execution_id, user_id, proposal_id, mode, market,"  # noqa: S608 - constant fragments only
            " side, amount_quote, status, client_order_id, principal, preflight, claimed_at, submitting_at,"
            " updated_at) VALUES (%s, %s, %s, %s, %s, 'buy', %s, 'SUBMITTING', %s, 'scanner', %s, %s, %s, %s)"
            " ON CONFLICT (user_id, proposal_id) DO NOTHING RETURNING *)"
            " SELECT claim.execution_id, oracle.append_audit_event('executor', 'execution.claimed',"
            " claim.execution_id::text, claim.principal, jsonb_build_object('proposal_id', claim.proposal_id::text)),"
            f" {_AUDIT} FROM claim",
            (
                *(execution_id, user_id, proposal_id, mode, market, amount, client_order_id, Jsonb({}), now, now, now),
                *("executor", "execution.transition", execution_id, "scanner", Jsonb({"to": "SUBMITTING"})),
            ),
        ).fetchone()
    return execution_id, client_order_id


def _answer(
    conn: psycopg.Connection[Any],
    *,
    mode: str,
    user_id: str,
    execution_id: str,
    market: str,
    order_id: str,
    amount: Decimal,
    price: Decimal,
    response: dict[str, Any],
) -> None:
    """The answer's transaction: FILLED with its figures, the fill and its book entry, the audit event."""
    now = datetime.now(UTC)
    with user_transaction(conn, user_id):
        conn.execute(
            "UPDATE oracle.trade_executions SET status = 'FILLED', exchange_order_id = %s, filled_amount = %s,"
            " filled_amount_quote = %s, response = %s, updated_at = %s WHERE execution_id = %s AND status = 'SUBMITTING'",
            (order_id, amount / price, amount, Jsonb(response), now, execution_id),
        )
        conn.execute(
            "INSERT INTO oracle.trade_history (execution_id, fill_id, user_id, market, side, amount, price,"
            " filled_at) VALUES (%s, %s, %s, %s, 'buy', %s, %s, %s) ON CONFLICT DO NOTHING",
            (execution_id, order_id, user_id, market, amount / price, price, now),
        )
        # the fill enters the user's book: the position locked, one entry, the position saved
        conn.execute(
            "INSERT INTO oracle.book_positions (user_id, mode, market) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (user_id, mode, market),
        )
        conn.execute(
            "SELECT * FROM oracle.book_positions WHERE mode = %s AND market = %s FOR UPDATE", (mode, market)
        ).fetchone()
        conn.execute(
            "INSERT INTO oracle.book_entries (execution_id, fill_id, user_id, mode, market, side, filled_at,"
            " quantity_delta, cost_delta_eur, realized_pnl_eur) VALUES (%s, %s, %s, %s, %s, 'buy', %s, %s, %s, 0)",
            (execution_id, order_id, user_id, mode, market, now, amount / price, amount),
        )
        conn.execute(
            "UPDATE oracle.book_positions SET quantity = quantity + %s, cost_eur = cost_eur + %s, fills = fills + 1,"
            " last_filled_at = %s, last_execution_id = %s, last_fill_id = %s, updated_at = %s"
            " WHERE mode = %s AND market = %s",
            (amount / price, amount, now, execution_id, order_id, now, mode, market),
        )
        _audit(conn, "executor", "execution.transition", execution_id, {"to": "FILLED"})


class Sdks:
    """One official SDK client per client thread (as one executor process has one)."""

    def __init__(self, url: str, key: str, secret: str) -> None:
        self._config = {"restUrl": url, "apikey": key, "apisecret": secret, "timeout": 30}
        self._local = threading.local()

    def get(self) -> Bitvavo:
        sdk: Bitvavo | None = getattr(self._local, "sdk", None)
        if sdk is None:
            sdk = Bitvavo(self._config)
            self._local.sdk = sdk
        return sdk


def executor_tasks(
    conns: Connections,
    mode: str,
    triples: Sequence[tuple[str, str, str]],
    *,
    amount: Decimal,
    prices: dict[str, Decimal],
    sdks: Sdks | None,
    operator_id: str,
    placed: list[str],
) -> list[Task]:
    """One floor task per (user, proposal, market): claim-and-SUBMITTING, [order], answer. ``placed``
    collects the clientOrderIds the simulator accepted (for the correctness check)."""
    lock = threading.Lock()

    def make(user_id: str, proposal_id: str, market: str) -> Callable[[], Outcome]:
        def task() -> Outcome:
            conn = conns.get()
            t0 = time.perf_counter()
            execution_id, cid = _claim_and_submitting(
                conn, mode=mode, user_id=user_id, proposal_id=proposal_id, market=market, amount=amount
            )
            t1 = time.perf_counter()
            if mode == "live":
                if sdks is None:
                    raise RuntimeError("a live floor needs the SDK clients")
                answer = sdks.get().placeOrder(
                    market,
                    "buy",
                    "market",
                    {"amountQuote": str(amount), "clientOrderId": cid, "operatorId": int(operator_id)},
                )
                if "orderId" not in answer:
                    return Outcome("exchange:" + json.dumps(answer)[:80])
                order_id = str(answer["orderId"])
                with lock:
                    placed.append(cid)
            else:
                answer, order_id = {"paper": True}, execution_id
            t2 = time.perf_counter()
            _answer(
                conn,
                mode=mode,
                user_id=user_id,
                execution_id=execution_id,
                market=market,
                order_id=order_id,
                amount=amount,
                price=prices[market],
                response=answer,
            )
            t3 = time.perf_counter()
            return Outcome(parts={"claim+submitting": t1 - t0, "order": t2 - t1, "answer": t3 - t2})

        return task

    return [make(user, pid, market) for user, pid, market in triples]


# ------------------------------------------------------------------------------------ processes

PROCESSES = 2  # as many as the service has processes: the floor must not be limited by one GIL


@dataclass(frozen=True)
class BudgetSpec:
    """What a child process needs to build its share of budget floor tasks."""

    url: str
    users: tuple[str, ...]
    tasks: int


@dataclass(frozen=True)
class ExecutorSpec:
    """What a child process needs to build its share of executor floor tasks."""

    url: str
    mode: str
    triples: tuple[tuple[str, str, str], ...]
    amount: Decimal
    prices: dict[str, Decimal]
    exchange_url: str
    key: str
    secret: str
    operator_id: str


def _child(spec: BudgetSpec | ExecutorSpec, threads: int, deadline: float, channels: tuple[Any, Any, Any]) -> None:
    """One floor process: build the tasks, say ready, wait for go, run, send (Run, placed)."""
    ready, go, out = channels
    conns = Connections(spec.url, opened=threads)
    placed: list[str] = []
    if isinstance(spec, BudgetSpec):
        tasks = [budget_task(conns, spec.users[k % len(spec.users)]) for k in range(spec.tasks)]
    else:
        sdks = Sdks(spec.exchange_url, spec.key, spec.secret) if spec.mode == "live" else None
        tasks = executor_tasks(
            conns,
            spec.mode,
            spec.triples,
            amount=spec.amount,
            prices=spec.prices,
            sdks=sdks,
            operator_id=spec.operator_id,
            placed=placed,
        )
    ready.put(True)
    go.wait()
    try:
        measured = run(tasks, threads=threads, deadline_seconds=deadline, stop=threading.Event())
    finally:
        conns.close()
    out.put((measured, placed))


def run_in_processes(
    specs: Sequence[BudgetSpec | ExecutorSpec], *, threads: int, deadline_seconds: float
) -> tuple[Run, list[str]]:
    """Run one spec per process (spawned, so nothing of this process is inherited), ``threads``
    client threads split between them, all released together; the runs merged (wall: the
    longest). Returns the merged run and the clientOrderIds placed."""
    ctx = multiprocessing.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    share = max(1, threads // len(specs))
    children = [ctx.Process(target=_child, args=(spec, share, deadline_seconds, (ready, go, out))) for spec in specs]
    for child in children:
        child.start()
    try:
        for _ in children:
            ready.get(timeout=120)
        go.set()
        results = [out.get(timeout=deadline_seconds + 300) for _ in children]
    finally:
        for child in children:
            child.join(timeout=30)
            if child.is_alive():
                child.kill()
    runs = [r for r, _ in results]
    merged = Run(
        threads=sum(r.threads for r in runs),
        planned=sum(r.planned for r in runs),
        wall_seconds=max(r.wall_seconds for r in runs),
        samples=[s for r in runs for s in r.samples],
        cut_by_deadline=any(r.cut_by_deadline for r in runs),
        interrupted=any(r.interrupted for r in runs),
        started_at=min(r.started_at for r in runs),
        ended_at=max(r.ended_at for r in runs),
    )
    return merged, [cid for _, placed in results for cid in placed]
