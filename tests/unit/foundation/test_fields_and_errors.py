"""Request validation names the field; domain errors carry a reason and the fitting detail."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2

from shared import fields
from shared.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    InvariantBroken,
    PreconditionViolation,
    QuotaViolation,
    ResourceExhausted,
)


@pytest.mark.parametrize("value", ["", " ", "a b", "-x", "x" * 65, "a\x00", "ü"])
def test_bad_user_ids(value: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        fields.user_id(value)
    assert caught.value.violations[0].field == "user_id"


def test_good_values() -> None:
    assert fields.user_id("alice@example.com") == "alice@example.com"
    assert fields.uuid_str("6F9619FF-8B86-D011-B42D-00C04FC964FF", "id") == "6f9619ff-8b86-d011-b42d-00c04fc964ff"
    assert fields.market("BTC-EUR") == "BTC-EUR"
    assert fields.required_decimal("12.50", "amount") == Decimal("12.50")
    assert fields.page_size(0) == 50


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1e400", "exponent"),
        ("1e999999", "exponent"),
        ("1e-21", "exponent"),
        ("1e10", "at most"),
        ("NaN", "decimal"),
        ("Infinity", "decimal"),
        ("abc", "decimal"),
        ("1.234", "decimals"),
        ("0.0000000000000000001", "decimals"),
        ("-1", "at least"),
        # Python's Decimal() accepts every one of these; the request grammar does not.
        ("\u0661\u0662\u0663", "ASCII digits"),  # Arabic-Indic "123"
        ("\uff11\uff12", "ASCII digits"),  # full-width "12"
        ("1_000", "underscores"),
        (" 12.50", "spaces"),
        ("12.50 ", "spaces"),
        ("12.50\n", "spaces"),
        ("+12", "signs"),
        (".5", "decimal number"),
        ("5.", "decimal number"),
        ("1" * 41, "too long"),
    ],
)
def test_bad_decimals(value: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        fields.decimal(value, "policy.min_order_eur")
    assert caught.value.violations[0].field == "policy.min_order_eur"
    assert message in caught.value.violations[0].description


def test_good_decimals_in_every_accepted_form() -> None:
    assert fields.decimal("0", "amount") == Decimal(0)
    assert fields.decimal("12.5", "amount") == Decimal("12.5")
    assert fields.decimal("1.5E+2", "amount") == Decimal(150)
    assert fields.decimal("-0.001", "pct", places=3, minimum=None) == Decimal("-0.001")
    assert fields.decimal("", "amount", allow_empty=True) is None


@pytest.mark.parametrize(
    ("seconds", "nanos", "message"),
    [
        (2**63 - 1, 0, "between"),
        (-(2**63), 0, "between"),
        (-1, 0, "between"),
        (fields.MAX_DURATION_SECONDS + 1, 0, "between"),
        (10, 5, "whole seconds"),
    ],
)
def test_bad_durations_name_their_field(seconds: int, nanos: int, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        fields.duration(Duration(seconds=seconds, nanos=nanos), "policy.cooldown")
    (violation,) = caught.value.violations
    assert violation.field == "policy.cooldown"
    assert message in violation.description


def test_durations_within_bounds() -> None:
    assert fields.duration(Duration(seconds=900), "cooldown") == timedelta(minutes=15)
    assert fields.duration(Duration(), "cooldown") == timedelta(0)
    with pytest.raises(InvalidArgument):
        fields.duration(Duration(seconds=5), "interval", minimum=timedelta(seconds=10))


def test_enum_rejects_unspecified() -> None:
    with pytest.raises(InvalidArgument) as caught:
        fields.enum(0, "side", {1, 2})
    assert caught.value.violations[0].field == "side"
    with pytest.raises(InvalidArgument):
        fields.enum(9, "side", {1, 2})


def test_page_tokens_round_trip_and_reject_garbage() -> None:
    token = fields.encode_page_token({"k": "2026-01-01", "id": "x"})
    assert fields.decode_page_token(token) == {"k": "2026-01-01", "id": "x"}
    with pytest.raises(InvalidArgument):
        fields.decode_page_token("not-a-token!")


def unpack(status_details: Any, kind: Any) -> list[Any]:
    out = []
    for detail in status_details:
        if detail.Is(kind.DESCRIPTOR):
            message = kind()
            detail.Unpack(message)
            out.append(message)
    return out


def test_status_carries_error_info_and_detail() -> None:
    status = InvalidArgument([FieldViolation("a", "x"), FieldViolation("b", "y")]).to_status()
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    (info,) = unpack(status.details, error_details_pb2.ErrorInfo)
    assert info.reason == "INVALID_ARGUMENT" and info.metadata["fields"] == "a,b"
    (bad,) = unpack(status.details, error_details_pb2.BadRequest)
    assert [v.field for v in bad.field_violations] == ["a", "b"]

    pre = FailedPrecondition([PreconditionViolation("COOLDOWN_ACTIVE", "cooldown", "wait")]).to_status()
    assert unpack(pre.details, error_details_pb2.ErrorInfo)[0].reason == "COOLDOWN_ACTIVE"
    assert unpack(pre.details, error_details_pb2.PreconditionFailure)[0].violations[0].type == "COOLDOWN_ACTIVE"

    quota = ResourceExhausted([QuotaViolation("user:a/hourly_calls", "full")]).to_status()
    assert unpack(quota.details, error_details_pb2.QuotaFailure)[0].violations[0].subject == "user:a/hourly_calls"

    info_extra = error_details_pb2.ErrorInfo(reason="EXTRA")
    exists = AlreadyExists("execution", "e1", extra=[info_extra]).to_status()
    assert [i.reason for i in unpack(exists.details, error_details_pb2.ErrorInfo)] == ["ALREADY_EXISTS", "EXTRA"]


def test_a_broken_invariant_is_internal_and_its_text_stays_in_the_log() -> None:
    error = InvariantBroken("execution 1234 is SUBMITTING without submitting_at")
    status = error.to_status()
    assert status.code == grpc.StatusCode.INTERNAL.value[0]
    assert status.message == "internal error"
    assert "1234" in str(error)  # what the interceptor logs
    (info,) = unpack(status.details, error_details_pb2.ErrorInfo)
    assert info.reason == "INTERNAL"
    assert len(status.details) == 1


def test_a_required_decimal_is_never_empty() -> None:
    for parse in (fields.required_decimal, fields.decimal):
        with pytest.raises(InvalidArgument) as caught:
            parse("", "policy.max_order_eur")
        assert caught.value.violations[0] == FieldViolation("policy.max_order_eur", "is required")
    assert fields.required_decimal("0.5", "pct", places=1, maximum=Decimal(1)) == Decimal("0.5")
