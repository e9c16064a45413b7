"""Request validation names the field; domain errors carry a reason and the fitting detail."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from shared import fields
from shared.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
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
    [("1e400", "at most"), ("NaN", "finite"), ("abc", "decimal"), ("1.234", "decimals"), ("-1", "at least")],
)
def test_bad_decimals(value: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        fields.decimal(value, "policy.min_order_eur")
    assert caught.value.violations[0].field == "policy.min_order_eur"
    assert message in caught.value.violations[0].description


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
