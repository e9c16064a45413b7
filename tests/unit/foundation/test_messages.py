"""shared.messages: the values every servicer writes into its messages."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from shared import fields, messages
from shared.errors import InvalidArgument

ID = "0b6f1d3e-7c55-4c58-9d1a-3f7a4f3c2b10"


def test_a_page_token_names_the_last_row_of_the_page_and_reads_back() -> None:
    at = datetime(2026, 11, 30, 4, 30, tzinfo=UTC)
    rows = [(at, "00000000-0000-4000-8000-000000000001"), (at, ID), (at, "x")]
    page, token = messages.page(rows, 2, lambda r: r)
    assert page == rows[:2]
    assert messages.position(token) == (at, ID)
    assert messages.page(rows, 3, lambda r: r) == (rows, "")
    assert messages.position("") is None


@pytest.mark.parametrize("position", [{"t": "yesterday", "i": ID}, {"t": "2026-11-30T00:00:00+00:00"}, {"i": ID}])
def test_a_token_that_is_not_ours_names_the_field(position: dict[str, str]) -> None:
    with pytest.raises(InvalidArgument) as refused:
        messages.position(fields.encode_page_token(position))
    assert [v.field for v in refused.value.violations] == ["page_token"]


def test_decimal_strings_have_no_exponent() -> None:
    assert messages.decimal_string(Decimal("1E+3")) == "1000"
    assert messages.decimal_string(Decimal("12.500")) == "12.5"
    assert messages.decimal_string(Decimal("-0.00")) == "0"


def test_timestamps_keep_the_moment() -> None:
    at = datetime(2026, 11, 30, 4, 30, 1, 250000, tzinfo=UTC)
    assert messages.timestamp(at).ToDatetime(tzinfo=UTC) == at
    assert messages.optional_timestamp(None) is None
