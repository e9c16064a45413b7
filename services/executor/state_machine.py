"""The execution state machine (docs/design.md#execution-state-machine) and the one way to move an execution.

    CLAIMED     → SUBMITTING | FAILED (kill switch off at submit, or a stale claim: nothing sent)
    SUBMITTING  → SUBMITTED | PARTIALLY_FILLED | FILLED | CANCELED   (the exchange's answer)
                | UNKNOWN                                           (answer lost: 101/109/timeout/5xx)
                | FAILED                                            (refused, not sent, proven absent)
    UNKNOWN     → SUBMITTED | PARTIALLY_FILLED | FILLED | CANCELED | FAILED (reconciled)
    SUBMITTED   → PARTIALLY_FILLED | FILLED | CANCELED
    PARTIALLY_FILLED → FILLED | CANCELED
    FILLED, CANCELED, FAILED: final — with ONE exception, :func:`adopt`:
    FAILED (PROVEN_ABSENT only) → SUBMITTED | PARTIALLY_FILLED | FILLED | CANCELED, when the order
    is found late (docs/design.md#found-late-adoption; audit kind ``execution.found_late``).

SUBMITTING is committed before the single POST /order; whatever answers (the sender, or a
reconciler in any executor instance) moves the execution with :func:`advance`, a
compare-and-set ``UPDATE … WHERE status = <expected>``: two movers never both win, and the
loser sees ``None`` and re-reads. Every move is audited in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from services.executor import SERVICE, ledger, metrics, repository
from services.executor.model import Execution, OrderView, Status
from shared import audit
from shared.db import Conn
from shared.errors import InvariantBroken
from shared.exchange.errors import (
    AuthenticationError,
    NotSentError,
    PermissionDeniedError,
    RateLimitedError,
    RequestRejectedError,
)

_LIVE = {Status.SUBMITTED, Status.PARTIALLY_FILLED, Status.FILLED, Status.CANCELED}

# status -> the statuses it may move to. Terminal statuses move nowhere.
TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    Status.CLAIMED: frozenset({Status.SUBMITTING, Status.FAILED}),
    Status.SUBMITTING: frozenset({*_LIVE, Status.UNKNOWN, Status.FAILED}),
    Status.UNKNOWN: frozenset({*_LIVE, Status.FAILED}),
    Status.SUBMITTED: frozenset({Status.SUBMITTED, Status.PARTIALLY_FILLED, Status.FILLED, Status.CANCELED}),
    Status.PARTIALLY_FILLED: frozenset({Status.PARTIALLY_FILLED, Status.FILLED, Status.CANCELED}),
    Status.FILLED: frozenset(),
    Status.CANCELED: frozenset(),
    Status.FAILED: frozenset(),
}

# The one move out of a final status: an order found after its execution FAILED as PROVEN_ABSENT.
FOUND_LATE_FROM = Status.FAILED
FOUND_LATE_CODE = "PROVEN_ABSENT"
FOUND_LATE_TO = frozenset(_LIVE)

# Final statuses move nowhere (but for adopt). The database's oracle.execution_is_final (migration 0022), which
# every SQL statement about unresolved executions reads, must say the same: a test compares.
TERMINAL = frozenset(s for s, targets in TRANSITIONS.items() if not targets)


class IllegalTransition(InvariantBroken):
    """A move the state machine does not allow: a bug, never a runtime condition."""


def error_record(code: str, message: str, *, source: str) -> dict[str, str]:
    """The ``error`` JSON of an execution: a code (the exchange's, or ours), text and who said it."""
    return {"code": code, "message": message[:500], "source": source}


def allowed(current: Status, new: Status) -> bool:
    """True when ``current`` may move to ``new``."""
    return new in TRANSITIONS[current]


def advance(
    conn: Conn,
    execution: Execution,
    new: Status,
    *,
    now: datetime,
    principal: str,
    changes: Mapping[str, Any] | None = None,
    audit_payload: Mapping[str, Any] | None = None,
) -> Execution | None:
    """Move ``execution`` from the status it was read in to ``new`` (compare-and-set) and audit it.

    ``changes`` are other columns to set in the same UPDATE. Returns the updated execution, or
    None when the execution is no longer in the status it was read in (another mover won).
    """
    if not allowed(execution.status, new):
        raise IllegalTransition(f"execution {execution.execution_id}: {execution.status} -> {new} is not allowed")
    return _move(conn, execution, new, now=now, principal=principal, changes=changes, audit_payload=audit_payload)


def _move(
    conn: Conn,
    execution: Execution,
    new: Status,
    *,
    now: datetime,
    principal: str,
    changes: Mapping[str, Any] | None,
    audit_payload: Mapping[str, Any] | None,
    kind: str = "execution.transition",
) -> Execution | None:
    """The compare-and-set UPDATE and its audit event (callers checked the move is allowed)."""
    row = repository.compare_and_set_status(
        conn, execution.execution_id, expected=execution.status, new=new, now=now, changes=dict(changes or {})
    )
    if row is None:
        return None
    moved = Execution.from_row(row)
    if new in TERMINAL:
        metrics.final(new.value)
    audit.append(
        conn,
        service=SERVICE,
        kind=kind,
        subject_id=moved.execution_id,
        principal=principal,
        payload={
            "from": execution.status.value,
            "to": new.value,
            "proposal_id": moved.proposal_id,
            **dict(audit_payload or {}),
        },
    )
    return moved


def fail(
    conn: Conn, execution: Execution, code: str, message: str, *, source: str, now: datetime, principal: str
) -> Execution | None:
    """Move ``execution`` to FAILED with an error record (compare-and-set, audited)."""
    return advance(
        conn,
        execution,
        Status.FAILED,
        now=now,
        principal=principal,
        changes={"error": error_record(code, message, source=source)},
        audit_payload={"reason": code},
    )


# Answers to POST /order after which the order certainly does not exist (FAILED). Anything else
# — a lost answer, 101/109, a 5xx, an unexpected exception — may hide a placed order (UNKNOWN).
_ORDER_ABSENT = (RequestRejectedError, NotSentError, AuthenticationError, PermissionDeniedError, RateLimitedError)


def order_absent(exc: BaseException) -> bool:
    """True when a failed placement proves the order was not created."""
    return isinstance(exc, _ORDER_ABSENT)


def _order_changes(view: OrderView) -> dict[str, Any]:
    return {
        "exchange_order_id": view.order_id,
        "filled_amount": view.filled_amount,
        "filled_amount_quote": view.filled_amount_quote,
        "fee_paid": view.fee_paid,
        "fee_currency": view.fee_currency,
        "fee_pending": view.fee_pending,
        "response": view.raw,
    }


def _order_audit(view: OrderView) -> dict[str, Any]:
    return {
        "exchange_order_id": view.order_id,
        "exchange_status": view.exchange_status,
        "filled_amount": str(view.filled_amount),
        "filled_amount_quote": str(view.filled_amount_quote),
        "fee_paid": str(view.fee_paid),
        "fee_pending": view.fee_pending,
        "fills": len(view.fills),
    }


def record_order(
    conn: Conn, execution: Execution, view: OrderView, *, now: datetime, principal: str
) -> Execution | None:
    """Apply what the exchange says about the execution's order: its status, id, fills.

    Returns the execution after the change (itself when nothing changed or the exchange's view
    is older than ours), or None when another mover changed it first (re-read and retry).
    """
    unchanged = (
        execution.status is view.status
        and execution.exchange_order_id == view.order_id
        and execution.filled_amount == view.filled_amount
        and execution.fee_paid == view.fee_paid
        and execution.fee_pending == view.fee_pending
    )
    if unchanged or not allowed(execution.status, view.status):
        return execution
    moved = advance(
        conn,
        execution,
        view.status,
        now=now,
        principal=principal,
        changes=_order_changes(view),
        audit_payload=_order_audit(view),
    )
    if moved is not None:
        # the fills and the user's books, in this transaction (ledger.record_fills: the one way)
        ledger.record_fills(conn, moved, view.fills, now=now)
    return moved


def audit_lookup_unreadable(conn: Conn, execution: Execution, details: Mapping[str, Any], *, principal: str) -> None:
    """A row that is ours at the exchange does not parse: the raw row and the reason go to the
    execution's audit trail (its status stays; the reconciler looks again later)."""
    audit.append(
        conn,
        service=SERVICE,
        kind="execution.lookup_unreadable",
        subject_id=execution.execution_id,
        principal=principal,
        payload={"proposal_id": execution.proposal_id, "status": execution.status.value, **dict(details)},
    )


def adoptable(execution: Execution) -> bool:
    """FAILED as PROVEN_ABSENT: the one final execution an order found late may bring back."""
    return execution.status is FOUND_LATE_FROM and execution.error.get("code") == FOUND_LATE_CODE


def adopt(conn: Conn, execution: Execution, view: OrderView, *, now: datetime, principal: str) -> Execution | None:
    """The one documented move out of FAILED: the order of an execution FAILED as PROVEN_ABSENT
    exists after all. The execution takes the order's status and fills (compare-and-set, audited
    as ``execution.found_late``) and counts in every limit from then on
    (``oracle.execution_counts``: any status but FAILED or an unfilled CANCELED).

    Returns the moved execution, or None when it is no longer what was read (re-read)."""
    if not adoptable(execution) or view.status not in FOUND_LATE_TO:
        raise IllegalTransition(
            f"execution {execution.execution_id}: {execution.status} ({execution.error.get('code')}) -> {view.status}"
            " is not a found-late adoption"
        )
    changes = {**_order_changes(view), "found_late_until": None}
    moved = _move(
        conn,
        execution,
        view.status,
        now=now,
        principal=principal,
        changes=changes,
        audit_payload={**_order_audit(view), "failed_as": execution.error},
        kind="execution.found_late",
    )
    if moved is not None:  # the fills and the user's books (ledger.record_fills: the one way)
        ledger.record_fills(conn, moved, view.fills, now=now)
    return moved


def refresh_fees(
    conn: Conn, execution: Execution, view: OrderView, *, now: datetime, principal: str
) -> Execution | None:
    """A final execution whose fills were recorded before their fees settled: the fills' fees and
    the execution's fee total as the exchange reports them now (audited ``execution.fee_settled``).
    Only the fee changes — a final status does not move. None when nothing changed."""
    if not execution.fee_pending or view.order_id != execution.exchange_order_id:
        return None
    # the fills' fees and the user's book (ledger.record_fills rebuilds it on a fee change)
    ledger.record_fills(conn, execution, view.fills, now=now)
    if view.fee_pending == execution.fee_pending and view.fee_paid == execution.fee_paid:
        return None
    row = repository.set_fees(
        conn,
        execution.execution_id,
        fee_paid=view.fee_paid,
        fee_currency=view.fee_currency,
        fee_pending=view.fee_pending,
        response=view.raw,
    )
    if row is None:
        return None
    updated = Execution.from_row(row)
    audit.append(
        conn,
        service=SERVICE,
        kind="execution.fee_settled",
        subject_id=updated.execution_id,
        principal=principal,
        payload={
            "proposal_id": updated.proposal_id,
            "status": updated.status.value,
            "fee_paid_before": str(execution.fee_paid),
            "fee_paid": str(updated.fee_paid),
            "fee_currency": updated.fee_currency,
            "fee_pending": updated.fee_pending,
        },
    )
    return updated
