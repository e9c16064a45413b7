"""How the exchange layer classifies Bitvavo error codes and transport failures (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from shared.exchange.errors import (
    AuthenticationError,
    ExchangeUnavailableError,
    NotSentError,
    OrderNotFoundError,
    OrderRejectedError,
    OutcomeUnknownError,
    PermissionDeniedError,
    RateLimitedError,
    RequestRejectedError,
    UnexpectedResponseError,
)
from shared.exchange.orders import Order, OrderStatus
from shared.exchange.sdk import CallKind, error_from_exception, error_from_payload, never_sent, parse_ban_expiry
from shared.exchange.wire import check_market, check_uuid, epoch_ms_to_datetime, to_ms, wire_decimal

BAN = "Your IP or API key has been banned for not respecting the rate limit. The ban expires at 1700000060000."


@pytest.mark.parametrize(
    ("code", "on_write", "on_read"),
    [
        (101, OutcomeUnknownError, ExchangeUnavailableError),
        (109, OutcomeUnknownError, ExchangeUnavailableError),
        (107, OutcomeUnknownError, ExchangeUnavailableError),
        (111, OutcomeUnknownError, ExchangeUnavailableError),
        (999, OutcomeUnknownError, ExchangeUnavailableError),
        (203, OrderRejectedError, RequestRejectedError),
        (205, OrderRejectedError, RequestRejectedError),
        (212, OrderRejectedError, RequestRejectedError),
        (216, OrderRejectedError, RequestRejectedError),
        (217, OrderRejectedError, RequestRejectedError),
        (220, OutcomeUnknownError, RequestRejectedError),  # clientOrderId conflict: see below
        (233, OrderRejectedError, RequestRejectedError),
        (423, OrderRejectedError, RequestRejectedError),
        (240, OrderNotFoundError, OrderNotFoundError),
        (304, AuthenticationError, AuthenticationError),
        (305, AuthenticationError, AuthenticationError),
        (309, AuthenticationError, AuthenticationError),
        (310, PermissionDeniedError, PermissionDeniedError),
        (311, PermissionDeniedError, PermissionDeniedError),
    ],
)
def test_error_codes(code: int, on_write: type[Exception], on_read: type[Exception]) -> None:
    payload = {"errorCode": code, "error": "text"}
    write_error = error_from_payload(payload, CallKind.WRITE)
    read_error = error_from_payload(payload, CallKind.READ)
    assert type(write_error) is on_write
    assert type(read_error) is on_read
    assert write_error is not None and write_error.code == code


def test_a_client_order_id_conflict_on_placing_is_not_a_refusal() -> None:
    """220 on POST /order: an OPEN order already holds this clientOrderId. That order is live, so
    the placement must not be concluded absent (FAILED would hide it and stop it counting toward
    the caps): its outcome is unknown and the order is looked up by its clientOrderId."""
    error = error_from_payload({"errorCode": 220, "error": "clientOrderId conflict within the market."}, CallKind.WRITE)
    assert isinstance(error, OutcomeUnknownError)
    assert not isinstance(error, RequestRejectedError)
    assert error.code == 220


def test_a_refusal_of_an_order_is_a_request_refusal() -> None:
    assert issubclass(OrderRejectedError, RequestRejectedError)
    assert not issubclass(OutcomeUnknownError, RequestRejectedError)


def test_rate_limit_error_carries_the_ban_end() -> None:
    error = error_from_payload({"errorCode": 105, "error": BAN}, CallKind.WRITE)
    assert isinstance(error, RateLimitedError)
    assert error.reset_at == datetime(2023, 11, 14, 22, 14, 20, tzinfo=UTC)
    assert parse_ban_expiry("no time here") is None


def test_results_are_not_errors() -> None:
    assert error_from_payload({"orderId": "x"}, CallKind.WRITE) is None
    assert error_from_payload([{"market": "BTC-EUR"}], CallKind.READ) is None


def _refused() -> requests.exceptions.ConnectionError:
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")  # type: ignore[arg-type]
    return requests.exceptions.ConnectionError(MaxRetryError(None, "/v2/order", reason))  # type: ignore[arg-type]


def test_only_connect_phase_failures_count_as_not_sent() -> None:
    assert never_sent(_refused())
    assert never_sent(requests.exceptions.ConnectTimeout())
    dropped = requests.exceptions.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError()))
    assert not never_sent(dropped)
    assert not never_sent(requests.exceptions.ReadTimeout())
    assert not never_sent(requests.exceptions.JSONDecodeError("Expecting value", "<html>", 0))
    assert isinstance(error_from_exception(_refused(), CallKind.WRITE, "place"), NotSentError)
    assert isinstance(error_from_exception(dropped, CallKind.WRITE, "place"), OutcomeUnknownError)
    assert isinstance(error_from_exception(dropped, CallKind.READ, "ticker"), ExchangeUnavailableError)


def test_decimals_go_out_plain_and_floats_are_refused() -> None:
    assert wire_decimal(Decimal("1E+1"), "amount") == "10"
    assert wire_decimal(Decimal("0.00100"), "amount") == "0.001"
    with pytest.raises(TypeError):
        wire_decimal(10.5, "amount")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        wire_decimal(Decimal("-1"), "amount")


def test_strings_that_go_into_urls_are_checked() -> None:
    with pytest.raises(ValueError, match="market"):
        check_market("BTC-EUR&operatorId=1")
    with pytest.raises(ValueError, match="UUID"):
        check_uuid("not-a-uuid", "client_order_id")
    assert check_uuid("4F273532-93C8-445D-B4A0-269A50155779", "x") == "4f273532-93c8-445d-b4a0-269a50155779"


def test_milliseconds_round_trip_exactly() -> None:
    for ms in (1795807637920, 1700000000001, 1548172481125):
        assert to_ms(epoch_ms_to_datetime(ms)) == ms


SAMPLE_ORDER = {
    "orderId": "1be6d0df-d5dc-4b53-a250-3376f3b393e6",
    "market": "BTC-EUR",
    "created": 1706100650751,
    "updated": 1706100650751,
    "status": "new",
    "side": "buy",
    "orderType": "limit",
    "amount": "10",
    "amountRemaining": "10",
    "price": "7000",
    "onHold": "9109.61",
    "onHoldCurrency": "EUR",
    "filledAmount": "0",
    "filledAmountQuote": "0",
    "feePaid": "0",
    "feeCurrency": "EUR",
    "fills": [],
    "selfTradePrevention": "decrementAndCancel",
    "visible": True,
    "timeInForce": "GTC",
    "postOnly": False,
    "operatorId": 543462,
}


def test_the_documented_order_object_parses() -> None:
    order = Order.from_json(SAMPLE_ORDER)
    assert order.status is OrderStatus.NEW and order.is_active
    assert order.price == Decimal("7000") and order.amount_quote is None
    assert order.client_order_id is None and order.operator_id == 543462
    with pytest.raises(UnexpectedResponseError):
        Order.from_json({**SAMPLE_ORDER, "status": "exploded"})
    with pytest.raises(UnexpectedResponseError):
        Order.from_json({k: v for k, v in SAMPLE_ORDER.items() if k != "filledAmount"})
