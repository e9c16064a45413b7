"""The execution state machine (docs/design.md#execution-state-machine) and the one way to move an execution.

    CLAIMED     → SUBMITTING | FAILED (kill switch off at submit, or a stale claim: nothing sent)
    SUBMITTING  → SUBMITTED | PARTIALLY_FILLED | FILLED | CANCELED   (the exchange's answer)
                | UNKNOWN                                           (answer lost: 101/109/timeout/5xx)
                | FAILED                                            (refused, not sent, proven absent)
    UNKNOWN     → SUBMITTED | PARTIALLY_FILLED | FILLED | CANCELED | FAILED (reconciled)
    SUBMITTED   → PARTIALLY_FILLED | FILLED | CANCELED
    PARTIALLY_FILLED → FILLED | CANCELED
    FILLED, CANCELED, FAILED: final.

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
from shared.errors import OracleError
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

# Final statuses move nowhere. The database's oracle.execution_is_final (migration 0022), which
# every SQL statement about unresolved executions reads, must say the same: a test compares.
TERMINAL = frozenset(s for s, targets in TRANSITIONS.items() if not targets)


class IllegalTransition(OracleError):
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
        kind="execution.transition",
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
    )
    if unchanged or not allowed(execution.status, view.status):
        return execution
    moved = advance(
        conn,
        execution,
        view.status,
        now=now,
        principal=principal,
        changes={
            "exchange_order_id": view.order_id,
            "filled_amount": view.filled_amount,
            "filled_amount_quote": view.filled_amount_quote,
            "fee_paid": view.fee_paid,
            "fee_currency": view.fee_currency,
            "response": view.raw,
        },
        audit_payload={
            "exchange_order_id": view.order_id,
            "exchange_status": view.exchange_status,
            "filled_amount": str(view.filled_amount),
            "filled_amount_quote": str(view.filled_amount_quote),
            "fee_paid": str(view.fee_paid),
            "fills": len(view.fills),
        },
    )
    if moved is not None:
        # the fills and the user's books, in this transaction (ledger.record_fills: the one way)
        ledger.record_fills(conn, moved, view.fills, now=now)
    return moved
