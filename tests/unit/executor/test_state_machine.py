"""The state machine's table and the deterministic clientOrderId."""

from __future__ import annotations

import uuid

from services.executor.execution import CLIENT_ORDER_NAMESPACE, client_order_id
from services.executor.model import Status
from services.executor.state_machine import TERMINAL, TRANSITIONS, allowed, order_absent
from shared.exchange.errors import (
    ExchangeUnavailableError,
    NotSentError,
    OrderRejectedError,
    OutcomeUnknownError,
    RateLimitedError,
)


def test_terminal_statuses_never_move() -> None:
    assert {Status.FILLED, Status.CANCELED, Status.FAILED} == TERMINAL
    for status in TERMINAL:
        assert not any(allowed(status, target) for target in Status)


def test_only_the_documented_moves() -> None:
    assert allowed(Status.CLAIMED, Status.SUBMITTING)
    assert allowed(Status.CLAIMED, Status.FAILED)
    assert not allowed(Status.CLAIMED, Status.FILLED)  # nothing fills before it was sent
    assert not allowed(Status.CLAIMED, Status.UNKNOWN)
    assert allowed(Status.SUBMITTING, Status.UNKNOWN)
    assert allowed(Status.UNKNOWN, Status.FILLED)
    assert not allowed(Status.SUBMITTED, Status.FAILED)  # the exchange has it: never "failed"
    assert not allowed(Status.PARTIALLY_FILLED, Status.SUBMITTED)
    assert not any(allowed(s, Status.CLAIMED) for s in Status)  # nothing goes back to unsent
    assert set(TRANSITIONS) == set(Status)


def test_only_refusals_prove_an_order_absent() -> None:
    assert order_absent(OrderRejectedError("insufficient balance", code=216))
    assert order_absent(NotSentError("connection refused"))
    assert order_absent(RateLimitedError("banned", code=105))
    assert not order_absent(OutcomeUnknownError("109", code=109))
    assert not order_absent(ExchangeUnavailableError("timeout"))
    assert not order_absent(RuntimeError("anything else"))


def test_client_order_id_is_a_uuid5_of_user_and_proposal() -> None:
    pid = "0b6c4e2a-1f3d-4c5b-9a8e-7d6f5e4c3b2a"
    first = client_order_id("alice", pid)
    assert first == client_order_id("alice", pid)
    assert first == str(uuid.uuid5(CLIENT_ORDER_NAMESPACE, f"alice:{pid}"))
    assert uuid.UUID(first).version == 5
    assert first != client_order_id("bob", pid)
