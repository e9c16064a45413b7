"""The budget ledger: reserve, commit and release LLM calls, read usage, set limits.

Zero overshoot (docs/design.md#budget-zero-overshoot) lives in :meth:`Ledger.reserve`: the count of the user's usage and the insert of the
reservation happen in ONE transaction holding the user's budget lock, so however many callers
and replicas race, each decision sees every reservation granted before it — no overshoot. The
count is its own statement after the one that takes the lock (under READ COMMITTED a statement
sees what committed before it started, so it must start once the lock is held); limits and usage
are read together, and each change writes its audit event in the same statement.
A commit counts at most what its reservation held (:func:`within_reservation`), so no usage
report pushes a window past its limit after the grant. Every change is audited in the
transaction that makes it. No gRPC here: callers pass plain values
and get domain errors (shared.errors) back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from services.budget import metrics, repository, reservations
from services.budget.pricing import ModelPrice, PriceTable
from services.budget.repository import NewReservation
from services.budget.reservations import Reservation
from services.budget.windows import (
    Bounds,
    Limits,
    Shortfall,
    Window,
    WindowReport,
    decide,
    frees_at,
    hourly_rows_to_leave,
    report,
    retry_after,
)
from shared import audit
from shared.db import Conn, Database
from shared.db.clock import database_now
from shared.db.locks import LockSpace, lock_user
from shared.errors import (
    Aborted,
    FailedPrecondition,
    NotFound,
    PreconditionViolation,
    QuotaViolation,
    ResourceExhausted,
)
from shared.ids import new_id

log = logging.getLogger(__name__)

SERVICE = "budget"
EXHAUSTED = "BUDGET_EXHAUSTED"


@dataclass(frozen=True)
class CallRequest:
    """A request to make one LLM call (already validated)."""

    user_id: str
    purpose: str
    model: str
    estimated_prompt_tokens: int
    requested_max_tokens: int


@dataclass(frozen=True)
class CallUsage:
    """What a call actually used; ``cost_micros`` None means "compute from the model's price"."""

    prompt_tokens: int
    completion_tokens: int
    cost_micros: int | None


@dataclass(frozen=True)
class UsageReport:
    """A user's limits and the state of every window."""

    limits: Limits
    windows: tuple[WindowReport, ...]


@dataclass(frozen=True)
class LedgerPolicy:
    """The configured rules the ledger applies."""

    default_limits: Limits
    prices: PriceTable
    reservation_ttl: timedelta
    max_tokens_per_call: int


@dataclass(frozen=True)
class Hooks:
    """Seams where a test steps in (tests/support/budget_with_hooks.py widens the race window
    between the count and the insert). Production builds the Ledger with the no-op default."""

    before_insert: Callable[[], None] = field(default=lambda: None)


class Ledger:
    """The usage log of every user, through one service role."""

    def __init__(self, db: Database, policy: LedgerPolicy, hooks: Hooks | None = None) -> None:
        self._db = db
        self._policy = policy
        self._hooks = hooks or Hooks()

    def reserve(self, request: CallRequest, *, principal: str) -> Reservation:
        """Grant one call or raise ResourceExhausted naming every window without room."""
        user_id = request.user_id
        price = self._policy.prices.price(request.model)
        with self._db.transaction(user_id) as conn:
            # The database's clock, read by the statement that takes the lock once it is granted:
            # the reservation is stamped, and every window placed, when it is decided.
            bounds = Bounds.at(lock_user(conn, LockSpace.USER_BUDGET, user_id))
            own_limits, usage = repository.read_limits_and_usage(conn, user_id, bounds)
            limits = own_limits or self._policy.default_limits
            decision = decide(
                limits,
                usage,
                prompt_tokens=request.estimated_prompt_tokens,
                requested_max_tokens=request.requested_max_tokens,
                cap=self._policy.max_tokens_per_call,
                price=price,
            )
            metrics.decided(decision, limits, usage)
            if decision.grant is None:
                raise self._exhausted(conn, request, decision.shortfalls, bounds, price)
            self._hooks.before_insert()
            grant = decision.grant
            new = NewReservation(
                reservation_id=new_id(),
                user_id=user_id,
                purpose=request.purpose,
                model=request.model,
                max_tokens=grant.max_tokens,
                estimated_tokens=grant.estimated_tokens,
                estimated_cost_micros=grant.estimated_cost_micros,
                reserved_at=bounds.now,
                expires_at=bounds.now + self._policy.reservation_ttl,
            )
            row = repository.insert_reservation(
                conn,
                new,
                audit.Event(
                    service=SERVICE,
                    kind="budget.reserved",
                    subject_id=new.reservation_id,
                    principal=principal,
                    payload={
                        "purpose": new.purpose,
                        "model": new.model,
                        "requested_max_tokens": request.requested_max_tokens,
                        "max_tokens": new.max_tokens,
                        "estimated_tokens": new.estimated_tokens,
                        "estimated_cost_micros": new.estimated_cost_micros,
                        "expires_at": new.expires_at.isoformat(),
                    },
                ),
            )
        return row

    def _exhausted(
        self, conn: Conn, request: CallRequest, shortfalls: tuple[Shortfall, ...], bounds: Bounds, price: ModelPrice
    ) -> ResourceExhausted:
        free_times = []
        for shortfall in shortfalls:
            leaving = None
            if shortfall.window is Window.HOURLY_CALLS and shortfall.limit > 0:
                offset = hourly_rows_to_leave(shortfall) - 1
                leaving = repository.hourly_reserved_at(conn, request.user_id, bounds, offset)
            free_times.append(
                frees_at(
                    shortfall,
                    bounds,
                    prompt_tokens=request.estimated_prompt_tokens,
                    price=price,
                    leaving_reserved_at=leaving,
                )
            )
        delay = retry_after(free_times, bounds.now)
        windows = ",".join(str(s.window) for s in shortfalls)
        metadata = {"user_id": request.user_id, "windows": windows}
        if delay is not None:
            metadata["retry_at"] = (bounds.now + delay).isoformat()
        log.info("budget exhausted", extra={"user_id": request.user_id, "windows": windows})
        return ResourceExhausted(
            [
                QuotaViolation(
                    subject=f"user:{request.user_id}/{s.window}",
                    description=f"{s.used} of {s.limit} used",
                )
                for s in shortfalls
            ],
            retry_after=delay,
            reason=EXHAUSTED,
            metadata=metadata,
        )

    def commit(self, user_id: str, reservation_id: str, usage: CallUsage, *, principal: str) -> Reservation:
        """Record what a reserved (or expired) call used; it becomes committed."""
        with self._db.transaction(user_id) as conn:
            current, _ = self._locked(conn, user_id, reservation_id)
            refusal = current.commit_refusal()
            if refusal is not None:
                raise _refused(refusal, reservation_id, current)
            cost = usage.cost_micros
            if cost is None:
                cost = self._policy.prices.price(current.model).cost_micros(
                    usage.prompt_tokens, usage.completion_tokens
                )
            counted = within_reservation(current, usage.prompt_tokens, usage.completion_tokens, cost)
            row = repository.mark_committed(
                conn,
                reservation_id,
                expected=current.status,
                prompt_tokens=counted.prompt_tokens,
                completion_tokens=counted.completion_tokens,
                cost_micros=counted.cost_micros,
                event=audit.Event(
                    service=SERVICE,
                    kind="budget.committed",
                    subject_id=reservation_id,
                    principal=principal,
                    payload={
                        "from_status": str(current.status),
                        "prompt_tokens": counted.prompt_tokens,
                        "completion_tokens": counted.completion_tokens,
                        "cost_micros": counted.cost_micros,
                        "cost_computed": usage.cost_micros is None,
                        "exceeded_max_tokens": usage.completion_tokens > current.max_tokens,
                        "clamped": counted.clamped,
                        # What the caller reported, when it was more than the reservation held.
                        **(
                            {
                                "reported": {
                                    "prompt_tokens": usage.prompt_tokens,
                                    "completion_tokens": usage.completion_tokens,
                                    "cost_micros": cost,
                                }
                            }
                            if counted.clamped
                            else {}
                        ),
                    },
                ),
            )
            if row is None:  # pragma: no cover - the row lock makes this impossible
                raise Aborted("the reservation changed concurrently; retry", reason="RESERVATION_CHANGED")
            metrics.committed(
                self._policy.prices.listed(current.model), usage.prompt_tokens, usage.completion_tokens, cost
            )
        if usage.completion_tokens > current.max_tokens or counted.clamped:
            log.warning(
                "a call reported more usage than it was granted; counted at its reservation",
                extra={"user_id": user_id, "reservation_id": reservation_id},
            )
        return row

    def release(self, user_id: str, reservation_id: str, reason: str, *, principal: str) -> Reservation:
        """Give back a reservation whose call was never made; it stops counting."""
        with self._db.transaction(user_id) as conn:
            current, now = self._locked(conn, user_id, reservation_id)
            refusal = current.release_refusal(now)
            if refusal is not None:
                raise _refused(refusal, reservation_id, current)
            row = repository.mark_released(
                conn,
                reservation_id,
                audit.Event(
                    service=SERVICE,
                    kind="budget.released",
                    subject_id=reservation_id,
                    principal=principal,
                    payload={"reason": reason},
                ),
            )
            if row is None:  # pragma: no cover - the row lock makes this impossible
                raise Aborted("the reservation changed concurrently; retry", reason="RESERVATION_CHANGED")
        return row

    def usage(self, user_id: str) -> UsageReport:
        """The user's limits and every window's used / limit / remaining / reset time."""
        with self._db.transaction(user_id) as conn:
            bounds = Bounds.at(database_now(conn))
            own_limits, usage = repository.read_limits_and_usage(conn, user_id, bounds)
            limits = own_limits or self._policy.default_limits
            oldest = repository.hourly_reserved_at(conn, user_id, bounds, 0)
        return UsageReport(limits, report(limits, usage, bounds, oldest_in_hour=oldest))

    def set_limits(self, user_id: str, limits: Limits, *, principal: str) -> Limits:
        """Replace the user's limits (validated by the caller: Limits.problems() is empty)."""
        if limits.problems():
            raise ValueError(f"invalid limits: {limits.problems()}")
        with self._db.transaction(user_id) as conn:
            # The reservation lock: a reserve in flight decides with the old limits or the new
            # ones, never a mix.
            now = lock_user(conn, LockSpace.USER_BUDGET, user_id)
            previous = repository.read_limits(conn, user_id)
            repository.write_limits(conn, user_id, limits, now)
            audit.append(
                conn,
                service=SERVICE,
                kind="budget.limits_set",
                subject_id=user_id,
                principal=principal,
                payload={
                    "previous": None if previous is None else asdict(previous),
                    "limits": asdict(limits),
                },
            )
        return limits

    def expire_stale(self) -> int:
        """Mark every user's reservations past their TTL as expired; returns how many."""
        with self._db.transaction(None) as conn:
            return repository.expire_stale(conn)

    @staticmethod
    def _locked(conn: Conn, user_id: str, reservation_id: str) -> tuple[Reservation, datetime]:
        """The reservation, row-locked, and the database's clock read with it."""
        found = repository.lock_reservation(conn, user_id, reservation_id)
        if found is None:  # unknown, or another user's: row-level security hides it
            raise NotFound("reservation", reservation_id, reason=reservations.NOT_FOUND)
        return found


@dataclass(frozen=True)
class CountedUsage:
    """What a commit stores and counts; ``clamped`` when the report exceeded the reservation."""

    prompt_tokens: int
    completion_tokens: int
    cost_micros: int
    clamped: bool


def within_reservation(current: Reservation, prompt_tokens: int, completion_tokens: int, cost: int) -> CountedUsage:
    """The reported usage, clamped to what the reservation held.

    A reservation is an upper bound the windows were checked against (the prompt at no less than
    its UTF-8 byte length, plus max_tokens), so an honest call never exceeds it. A report above
    it is counted at the reservation, so no report can push a window past its limit after the
    grant; the commit still succeeds (the call happened) and is flagged: ``clamped`` and the
    reported figures in the audit event, and a warning. Refusing the commit instead would leave
    the row counting the same estimate while the caller lost its record of the call."""
    tokens_cap = current.estimated_tokens
    counted_prompt = min(prompt_tokens, tokens_cap)
    counted_completion = min(completion_tokens, tokens_cap - counted_prompt)
    counted_cost = min(cost, current.estimated_cost_micros)
    clamped = (counted_prompt, counted_completion, counted_cost) != (prompt_tokens, completion_tokens, cost)
    return CountedUsage(counted_prompt, counted_completion, counted_cost, clamped)


def _refused(reason: str, reservation_id: str, current: Reservation) -> FailedPrecondition:
    return FailedPrecondition(
        [
            PreconditionViolation(
                type=reason, subject=f"reservation:{reservation_id}", description=f"it is {current.status}"
            )
        ],
        metadata={"status": str(current.status)},
    )
