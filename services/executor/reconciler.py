"""The reconciler: settles every execution whose outcome is not final, without ever sending an order.

It runs at startup, on a timer and on demand (ReconcileExecutions), in any number of executor
instances at once; every move is a compare-and-set (state_machine), so two reconcilers — or a
reconciler and the sender — never both win. Per execution (docs/design.md#reconciler):

* CLAIMED older than the stale age: its process died before sending → FAILED (nothing was sent;
  if the sender is merely slow, its CLAIMED→SUBMITTING compare-and-set now fails and it sends
  nothing).
* SUBMITTING, UNKNOWN, SUBMITTED, PARTIALLY_FILLED: look the order up by clientOrderId (the order,
  then the /orders and /trades history). Found → its real status and fills. FAILED ("proven
  absent") only when every lookup answered cleanly with nothing found AND the lookups *started*
  more than send time + request timeout + access window + safety margin after the send — after
  that the exchange refuses the signed request even if it were still on its way. A lookup that
  fails changes nothing.

The network lookups happen outside any transaction; each change is its own short transaction
for the execution's user.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.executor import metrics, repository, state_machine
from services.executor.model import Execution, Status
from services.executor.venue import Venue
from shared.clock import Clock
from shared.db import Database
from shared.errors import OracleError

log = logging.getLogger(__name__)

PRINCIPAL = "reconciler"
# How far before the claim the order history is searched (the exchange's clock may differ).
HISTORY_SLACK = timedelta(hours=1)


@dataclass(frozen=True)
class Timing:
    """How long the reconciler waits before concluding anything."""

    request_timeout: timedelta
    access_window: timedelta
    safety_margin: timedelta
    stale_claimed: timedelta
    batch: int = 500

    @property
    def proven_absent_after(self) -> timedelta:
        """Time after the send when an order not found can no longer appear."""
        return self.request_timeout + self.access_window + self.safety_margin


@dataclass
class Summary:
    """What one pass did."""

    examined: int = 0
    changed: list[Execution] = field(default_factory=list)
    unresolved: int = 0


class Reconciler:
    """Resolves non-final executions of one mode."""

    def __init__(self, db: Database, venue: Venue, clock: Clock, timing: Timing) -> None:
        self._db = db
        self._venue = venue
        self._clock = clock
        self._timing = timing

    def run(self, user_id: str | None = None) -> Summary:
        """One pass over ``user_id``'s non-final executions, or every user's."""
        summary, started = Summary(), time.monotonic()
        for execution_id, owner in self._candidates(user_id):
            summary.examined += 1
            try:
                after, moved = self._resolve(owner, execution_id)
            except OracleError as exc:  # database trouble: the next pass retries
                log.warning("reconcile of %s deferred: %s", execution_id, exc.reason)
                metrics.reconciler_failure("database")
                summary.unresolved += 1
                continue
            if moved and after is not None:
                summary.changed.append(after)
            if after is not None and after.status in (Status.SUBMITTING, Status.UNKNOWN):
                summary.unresolved += 1
        metrics.reconciler_pass([e.status.value for e in summary.changed], time.monotonic() - started)
        if summary.examined:
            log.info(
                "reconciled",
                extra={"examined": summary.examined, "changed": len(summary.changed), "unresolved": summary.unresolved},
            )
        return summary

    def _candidates(self, user_id: str | None) -> list[tuple[str, str]]:
        mode, limit = self._venue.mode, self._timing.batch
        with self._db.transaction(user_id) as conn:
            if user_id is None:
                return repository.unresolved_of_mode(conn, mode, limit)
            return [(e, user_id) for e in repository.unresolved_of_user(conn, mode, limit)]

    def _load(self, user_id: str, execution_id: str) -> Execution | None:
        with self._db.transaction(user_id) as conn:
            row = repository.execution(conn, execution_id)
        return Execution.from_row(row) if row else None

    def _resolve(self, user_id: str, execution_id: str) -> tuple[Execution | None, bool]:
        """The execution after this reconciler looked at it, and whether this reconciler moved it."""
        execution = self._load(user_id, execution_id)
        if execution is None or execution.status in state_machine.TERMINAL:
            return execution, False
        if execution.status is Status.CLAIMED:
            age = self._clock.now() - execution.claimed_at
            if age <= self._timing.stale_claimed:
                return execution, False
            return self._fail(execution, "STALE_CLAIM", f"claimed {int(age.total_seconds())}s ago and never sent")
        # The lookups prove absence only as of when they started: a slow lookup (retries, a
        # stall) must not make its "not found" look younger than it is.
        looked_at = self._clock.now()
        try:
            view = self._venue.find(
                market=execution.market,
                client_order_id=execution.client_order_id,
                since=execution.claimed_at - HISTORY_SLACK,
            )
        except Exception as exc:  # a lookup that fails proves nothing: keep the status
            log.warning("lookup of order %s failed (%s); status kept", execution.client_order_id, type(exc).__name__)
            metrics.reconciler_failure("lookup")
            return execution, False
        if view is None:
            return self._conclude_absent(execution, looked_at)
        with self._db.transaction(user_id) as conn:
            moved = state_machine.record_order(conn, execution, view, now=self._clock.now(), principal=PRINCIPAL)
        if moved is None:  # another instance got there first
            return self._load(user_id, execution_id), False
        return moved, moved is not execution

    def _conclude_absent(self, execution: Execution, looked_at: datetime) -> tuple[Execution | None, bool]:
        """No order under the clientOrderId: FAILED once it can no longer appear.

        ``looked_at`` is when the lookups *started*: the evidence is as old as that, so it proves
        absence only if the deadline (send time + request timeout + access window + margin) had
        already passed then — an order arriving at the exchange just before the deadline could
        otherwise have been missed by a lookup that began earlier and finished later.
        """
        if execution.status not in (Status.SUBMITTING, Status.UNKNOWN):
            log.error("order %s of a %s execution is not at the exchange", execution.client_order_id, execution.status)
            return execution, False
        sent_at = execution.submitting_at or execution.updated_at
        if looked_at - sent_at <= self._timing.proven_absent_after:
            return execution, False
        return self._fail(execution, "PROVEN_ABSENT", "no order under the clientOrderId after the access window")

    def _fail(self, execution: Execution, code: str, message: str) -> tuple[Execution | None, bool]:
        with self._db.transaction(execution.user_id) as conn:
            moved = state_machine.fail(
                conn, execution, code, message, source=PRINCIPAL, now=self._clock.now(), principal=PRINCIPAL
            )
        if moved is None:
            return self._load(execution.user_id, execution.execution_id), False
        return moved, True


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
