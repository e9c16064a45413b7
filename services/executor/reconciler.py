"""The reconciler: makes what the database says about every execution match what the exchange
holds, without ever sending an order.

It runs at startup, on a timer and on demand (ReconcileExecutions), in any number of executor
instances at once; every move is a compare-and-set (state_machine), so two reconcilers — or a
reconciler and the sender — never both win. Per execution (docs/design.md#reconciler):

* CLAIMED older than the stale age: its process died before sending → FAILED (nothing was sent;
  if the sender is merely slow, its CLAIMED→SUBMITTING compare-and-set now fails and it sends
  nothing).
* SUBMITTING, UNKNOWN, SUBMITTED, PARTIALLY_FILLED: look the order up by clientOrderId through
  the venue (``shared.exchange.history.OrderLookup``: the order, then the /orders and /trades
  history in 24 h windows; other users' rows skipped). Found → its real status and fills. FAILED
  ``PROVEN_ABSENT`` only when every lookup answered cleanly with nothing found AND exchange time,
  freshly measured, was past the execution's signing deadline + access window + safety margin
  when the lookups *started* (docs/design.md#proven-absent): the exchange refuses the signed
  request after that. A row that is ours but does not parse leaves the execution UNKNOWN, with
  the raw row and the reason in its audit trail.
* FAILED as PROVEN_ABSENT, within the found-late watch (48 h by default): looked up on a
  backing-off schedule; an order found is adopted (state_machine.adopt,
  docs/design.md#found-late-adoption).
* Fills recorded before their fee settled (``fee_pending``): looked up again until it has.

Nothing stops a pass: any exception while handling one execution is logged, counted and
backs that execution off (``next_reconcile_at`` doubles, stored per execution); candidates come
in the order of their next attempt, so rows that never resolve cannot starve the others, and are
leased as they are picked, so replicas reconciling at once take different rows. The
exchange weight the reconciler spends is bounded per minute (:class:`WeightBudget`); past it,
the remaining lookups wait for the next pass.

The network lookups happen outside any transaction; each change is its own short transaction
for the execution's user.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from services.executor import metrics, repository, state_machine
from services.executor.model import Absent, Execution, Found, Lookup, Status, Unreadable
from services.executor.venue import Venue
from shared.clock import Clock
from shared.db import Database
from shared.db.clock import database_now
from shared.exchange.errors import ExchangeError, WeightBudgetExceededError
from shared.exchange.wire import to_ms

log = logging.getLogger(__name__)

PRINCIPAL = "reconciler"
# How far before the signing deadline the history is searched: the order was signed before it,
# and the exchange stamps it on arrival; an hour covers any request timeout with room to spare.
HISTORY_SLACK = timedelta(hours=1)
PROVEN_ABSENT = state_machine.FOUND_LATE_CODE
# The least weight a lookup costs (GET /order): below it, no lookup is started.
MIN_LOOKUP_WEIGHT = 1
_MINUTE_S = 60.0


@dataclass(frozen=True)
class Timing:
    """How long the reconciler waits before concluding anything, and how hard it may push."""

    request_timeout: timedelta
    access_window: timedelta
    safety_margin: timedelta
    stale_claimed: timedelta
    batch: int = 500
    found_late_watch: timedelta = timedelta(hours=48)
    backoff: timedelta = timedelta(seconds=30)
    backoff_max: timedelta = timedelta(hours=1)
    weight_per_minute: int = 300
    lease: timedelta = timedelta(minutes=5)  # a picked row waits this long for other replicas' passes

    @property
    def absent_after_deadline_ms(self) -> int:
        """Exchange time after the signing deadline when an order not found can no longer appear."""
        return (self.access_window + self.safety_margin) // timedelta(milliseconds=1)


class WeightBudget:
    """The exchange weight the reconciler may spend in any 60 s (a sliding window); thread-safe."""

    def __init__(self, per_minute: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._per_minute = per_minute
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._spent: collections.deque[tuple[float, int]] = collections.deque()

    def remaining(self) -> int:
        with self._lock:
            self._forget()
            return self._per_minute - sum(w for _, w in self._spent)

    def spend(self, weight: int) -> None:
        if weight <= 0:
            return
        with self._lock:
            self._spent.append((self._monotonic(), weight))

    def _forget(self) -> None:
        horizon = self._monotonic() - _MINUTE_S
        while self._spent and self._spent[0][0] <= horizon:
            self._spent.popleft()


@dataclass
class Summary:
    """What one pass did."""

    examined: int = 0
    changed: list[Execution] = field(default_factory=list)
    unresolved: int = 0
    errors: int = 0  # executions whose handling raised (logged, backed off)
    deferred: int = 0  # lookups left for a later pass: the weight budget was spent


@dataclass
class _Pass:
    """State of one pass (passes may run concurrently: the timer and an on-demand call)."""

    clock_fresh: bool | None = None  # exchange clock measured in this pass (None: not yet tried)
    out_of_weight: bool = False


@dataclass(frozen=True)
class _Result:
    after: Execution | None
    moved: bool = False
    backoff: str | None = None  # why to look again later rather than next pass


class _NoWeight(Exception):
    """The pass's weight budget is spent: the lookup was not started."""


class Reconciler:
    """Reconciles the executions of one mode."""

    def __init__(self, db: Database, venue: Venue, clock: Clock, timing: Timing) -> None:
        self._db = db
        self._venue = venue
        self._clock = clock
        self._timing = timing
        self._budget = WeightBudget(timing.weight_per_minute)

    def run(self, user_id: str | None = None) -> Summary:
        """One pass over ``user_id``'s executions that need the reconciler, or every user's (due
        ones only). No execution's failure ends the pass."""
        summary, started = Summary(), time.monotonic()
        state = _Pass()
        for execution_id, owner in self._candidates(user_id):
            summary.examined += 1
            try:
                result = self._resolve(owner, execution_id, state)
            except _NoWeight:  # not looked up: due again, behind the rows waiting longer
                summary.deferred += 1
                summary.unresolved += 1
                self._schedule(owner, execution_id, _Result(None))
                continue
            except ExchangeError as exc:  # a lookup that fails proves nothing: the status stays
                log.warning("lookup for execution %s failed (%s); backing off", execution_id, type(exc).__name__)
                metrics.reconciler_failure("lookup")
                summary.errors += 1
                summary.unresolved += 1
                self._schedule(owner, execution_id, _Result(None, backoff=f"{type(exc).__name__}: {exc}"))
                continue
            except Exception as exc:  # contained: this execution waits longer, the pass goes on
                log.exception("reconcile of execution %s failed; backing off", execution_id)
                metrics.reconciler_failure("database")  # reading or recording the execution
                summary.errors += 1
                summary.unresolved += 1
                self._schedule(owner, execution_id, _Result(None, backoff=f"{type(exc).__name__}: {exc}"))
                continue
            after = result.after
            if result.moved and after is not None:
                summary.changed.append(after)
            if not result.moved or result.backoff is not None:  # a move alone makes it due at once
                self._schedule(owner, execution_id, result)
            if after is not None and after.status in (Status.SUBMITTING, Status.UNKNOWN):
                summary.unresolved += 1
        metrics.reconciler_pass([e.status.value for e in summary.changed], time.monotonic() - started)
        if summary.examined:
            log.info(
                "reconciled",
                extra={
                    "examined": summary.examined,
                    "changed": len(summary.changed),
                    "unresolved": summary.unresolved,
                    "errors": summary.errors,
                    "deferred": summary.deferred,
                },
            )
        return summary

    def _candidates(self, user_id: str | None) -> list[tuple[str, str]]:
        mode, limit = self._venue.mode, self._timing.batch
        with self._db.transaction(user_id) as conn:
            if user_id is None:
                return repository.to_reconcile_of_mode(
                    conn, mode, limit, lease_seconds=self._timing.lease.total_seconds()
                )
            return [(e, user_id) for e in repository.to_reconcile_of_user(conn, mode, limit)]

    def _schedule(self, user_id: str, execution_id: str, result: _Result) -> None:
        """Back of the queue; with a reason, backed off (doubling). Never raises: a row that
        cannot even be rescheduled is logged and comes again next pass."""
        try:
            with self._db.transaction(user_id) as conn:
                if result.backoff is None:
                    repository.requeue(conn, execution_id)
                else:
                    metrics.reconciler_backoff()
                    repository.defer_reconcile(
                        conn,
                        execution_id,
                        base_seconds=self._timing.backoff.total_seconds(),
                        max_seconds=self._timing.backoff_max.total_seconds(),
                        error=result.backoff,
                    )
        except Exception:
            log.exception("could not reschedule execution %s", execution_id)

    def _load(self, user_id: str, execution_id: str) -> Execution | None:
        with self._db.transaction(user_id) as conn:
            row = repository.execution(conn, execution_id)
        return Execution.from_row(row) if row else None

    def _resolve(self, user_id: str, execution_id: str, state: _Pass) -> _Result:
        """The execution after this reconciler looked at it, and whether this reconciler moved it."""
        execution = self._load(user_id, execution_id)
        if execution is None:
            return _Result(None)
        if execution.status is Status.CLAIMED:
            return self._resolve_claimed(execution)
        if execution.status in state_machine.TERMINAL:
            return self._resolve_final(execution, state)
        looked_at_ms, result = self._lookup(execution, state)
        if isinstance(result, Found):
            return self._record(execution, result)
        if isinstance(result, Unreadable):
            return self._unreadable(execution, result)
        return self._conclude_absent(execution, looked_at_ms, state)

    def _resolve_claimed(self, execution: Execution) -> _Result:
        """A CLAIMED execution was never sent: FAILED once its claim is stale.

        Its age is on the database's clock, which stamped the claim: this replica's own clock
        judges no other replica's claim (docs/design.md#one-clock-per-decision)."""
        with self._db.transaction(execution.user_id) as conn:
            now = database_now(conn)
        age = now - execution.claimed_at
        if age <= self._timing.stale_claimed:
            return _Result(execution)
        return self._fail(execution, "STALE_CLAIM", f"claimed {int(age.total_seconds())}s ago and never sent")

    def _resolve_final(self, execution: Execution, state: _Pass) -> _Result:
        """A final execution: watched for a late order while adoptable, its fees until settled."""
        if state_machine.adoptable(execution) and execution.found_late_until is not None:
            return self._watch(execution, state)
        if execution.fee_pending:
            return self._refresh_fees(execution, state)
        return _Result(execution)

    # ------------------------------------------------------------------ the exchange

    def _lookup(self, execution: Execution, state: _Pass) -> tuple[int, Lookup]:
        """One lookup within the weight budget; returns the exchange time it started at."""
        if state.out_of_weight or self._budget.remaining() < MIN_LOOKUP_WEIGHT:
            state.out_of_weight = True
            raise _NoWeight
        with self._venue.weight_tally() as tally:
            try:
                if state.clock_fresh is None:  # once per pass: a stale clock could end the search early
                    state.clock_fresh = self._measure_clock()
                looked_at_ms = self._venue.exchange_now_ms()
                result = self._venue.find(
                    market=execution.market,
                    client_order_id=execution.client_order_id,
                    since_ms=self._search_from_ms(execution),
                    max_weight=max(self._budget.remaining(), 0),
                )
            except WeightBudgetExceededError as exc:
                state.out_of_weight = True
                raise _NoWeight from exc
            finally:
                self._budget.spend(tally.spent)
        return looked_at_ms, result

    def _measure_clock(self) -> bool:
        try:
            self._venue.exchange_now_ms(fresh=True)
        except Exception as exc:  # no fresh exchange time: nothing is concluded absent this pass
            log.warning("exchange clock not measured (%s): no execution is proven absent", type(exc).__name__)
            return False
        return True

    def _deadline_ms(self, execution: Execution) -> int:
        """The exchange time after which the execution's order was never signed. Rows from before
        the deadline was stored: SUBMITTING time + request timeout (local clock, the old rule)."""
        if execution.sign_deadline_ms is not None:
            return execution.sign_deadline_ms
        sent_at = execution.submitting_at or execution.updated_at
        return to_ms(sent_at + self._timing.request_timeout)

    def _search_from_ms(self, execution: Execution) -> int:
        return self._deadline_ms(execution) - HISTORY_SLACK // timedelta(milliseconds=1)

    # ------------------------------------------------------------------ outcomes

    def _record(self, execution: Execution, found: Found) -> _Result:
        with self._db.transaction(execution.user_id) as conn:
            moved = state_machine.record_order(conn, execution, found.view, now=self._clock.now(), principal=PRINCIPAL)
        if moved is None:  # another instance got there first
            return _Result(self._load(execution.user_id, execution.execution_id))
        return _Result(moved, moved is not execution)

    def _unreadable(self, execution: Execution, row: Unreadable) -> _Result:
        """Ours, but it does not parse: UNKNOWN, the raw row and the reason in the audit trail."""
        log.error("order %s: the exchange's row does not parse (%s)", execution.client_order_id, row.reason)
        details = {"reason": row.reason, "source": row.source, "raw": row.raw}
        with self._db.transaction(execution.user_id) as conn:
            if execution.status is Status.SUBMITTING:
                moved = state_machine.advance(
                    conn,
                    execution,
                    Status.UNKNOWN,
                    now=self._clock.now(),
                    principal=PRINCIPAL,
                    changes={"error": state_machine.error_record("LOOKUP_UNREADABLE", row.reason, source=PRINCIPAL)},
                    audit_payload={"lookup_unreadable": details},
                )
                if moved is not None:
                    return _Result(moved, True, backoff=f"unreadable row: {row.reason}")
            else:
                state_machine.audit_lookup_unreadable(conn, execution, details, principal=PRINCIPAL)
        return _Result(execution, backoff=f"unreadable row: {row.reason}")

    def _conclude_absent(self, execution: Execution, looked_at_ms: int, state: _Pass) -> _Result:
        """No order under the clientOrderId: FAILED once it can no longer appear.

        ``looked_at_ms`` is exchange time when the lookups *started* (the clock freshly measured
        in this pass): the evidence is as old as that, so it proves absence only if the deadline
        + access window + margin had already passed then.
        """
        if execution.status not in (Status.SUBMITTING, Status.UNKNOWN):
            log.error("order %s of a %s execution is not at the exchange", execution.client_order_id, execution.status)
            return _Result(execution, backoff=f"{execution.status} but not found at the exchange")
        if not state.clock_fresh:
            return _Result(execution)
        if looked_at_ms <= self._deadline_ms(execution) + self._timing.absent_after_deadline_ms:
            return _Result(execution)
        return self._fail(
            execution,
            PROVEN_ABSENT,
            "no order under the clientOrderId after the signing deadline + access window",
            watch=True,
        )

    def _fail(self, execution: Execution, code: str, message: str, *, watch: bool = False) -> _Result:
        with self._db.transaction(execution.user_id) as conn:
            moved = state_machine.fail(
                conn, execution, code, message, source=PRINCIPAL, now=self._clock.now(), principal=PRINCIPAL
            )
            if moved is not None and watch:  # found-late watch: looked up again until then
                repository.watch_found_late(
                    conn, moved.execution_id, seconds=self._timing.found_late_watch.total_seconds()
                )
        if moved is None:
            return _Result(self._load(execution.user_id, execution.execution_id))
        return _Result(moved, True)

    def _watch(self, execution: Execution, state: _Pass) -> _Result:
        """FAILED as PROVEN_ABSENT, within the watch: an order found now is adopted."""
        _, result = self._lookup(execution, state)
        if isinstance(result, Absent):
            return _Result(execution, backoff="found-late watch: still absent")
        if isinstance(result, Unreadable):
            with self._db.transaction(execution.user_id) as conn:
                details = {"reason": result.reason, "source": result.source, "raw": result.raw}
                state_machine.audit_lookup_unreadable(conn, execution, details, principal=PRINCIPAL)
            return _Result(execution, backoff=f"unreadable row: {result.reason}")
        log.error("order %s of a FAILED execution found late: adopting it", execution.client_order_id)
        with self._db.transaction(execution.user_id) as conn:
            moved = state_machine.adopt(conn, execution, result.view, now=self._clock.now(), principal=PRINCIPAL)
        if moved is None:
            return _Result(self._load(execution.user_id, execution.execution_id))
        metrics.found_late()
        return _Result(moved, True)

    def _refresh_fees(self, execution: Execution, state: _Pass) -> _Result:
        """A final execution with a fill recorded before its fee settled."""
        _, result = self._lookup(execution, state)
        if not isinstance(result, Found):
            return _Result(execution, backoff="fee pending: order not readable")
        with self._db.transaction(execution.user_id) as conn:
            updated = state_machine.refresh_fees(
                conn, execution, result.view, now=self._clock.now(), principal=PRINCIPAL
            )
        if updated is None or updated.fee_pending:
            return _Result(updated or execution, backoff="fee not settled yet")
        return _Result(updated)


class ReconcilerThread:
    """Runs the reconciler once at startup and then every ``interval`` until stopped."""

    def __init__(self, reconciler: Reconciler, interval: timedelta) -> None:
        self._reconciler = reconciler
        self._interval = interval.total_seconds()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="executor-reconciler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._reconciler.run()
            except Exception:  # never let the loop die; the next pass retries
                log.exception("reconciler pass failed")
                metrics.reconciler_failure("pass")
            if self._stop.wait(self._interval):
                return
