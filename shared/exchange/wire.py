"""Bitvavo's JSON values ↔ Python values: decimal strings ↔ ``Decimal``, epoch ms ↔ aware UTC
``datetime``, and the checks on strings we put into URLs (the SDK does not URL-encode).

A value that does not parse raises ``UnexpectedResponseError``; callers on the write path turn that
into ``OutcomeUnknownError``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.exchange.errors import UnexpectedResponseError

_MARKET = re.compile(r"^[A-Z0-9]{1,16}-[A-Z0-9]{1,16}$")
_SYMBOL = re.compile(r"^[A-Z0-9]{1,16}$")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def field(obj: Mapping[str, Any], name: str) -> Any:
    if name not in obj:
        raise UnexpectedResponseError(f"field {name!r} missing from {sorted(obj)}")
    return obj[name]


def as_mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise UnexpectedResponseError(f"{what}: expected an object, got {type(value).__name__}")
    return value


def as_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise UnexpectedResponseError(f"{what}: expected a list, got {type(value).__name__}")
    return value


def single(value: Any, what: str) -> Mapping[str, Any]:
    """A ``?market=`` answer: Bitvavo sends one object (a one-element list is accepted too)."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    return as_mapping(value, what)


def to_decimal(value: Any, what: str) -> Decimal:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise UnexpectedResponseError(f"{what}: expected a decimal string, got {value!r}")
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise UnexpectedResponseError(f"{what}: not a decimal: {value!r}") from None
    if not result.is_finite():
        raise UnexpectedResponseError(f"{what}: not a finite decimal: {value!r}")
    return result


def decimal_field(obj: Mapping[str, Any], name: str) -> Decimal:
    return to_decimal(field(obj, name), name)


def optional_decimal(obj: Mapping[str, Any], name: str) -> Decimal | None:
    value = obj.get(name)
    return None if value is None else to_decimal(value, name)


def int_field(obj: Mapping[str, Any], name: str) -> int:
    value = field(obj, name)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise UnexpectedResponseError(f"{name}: expected an integer, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise UnexpectedResponseError(f"{name}: expected an integer, got {value!r}") from None


def str_field(obj: Mapping[str, Any], name: str) -> str:
    value = field(obj, name)
    if not isinstance(value, str):
        raise UnexpectedResponseError(f"{name}: expected a string, got {value!r}")
    return value


def bool_field(obj: Mapping[str, Any], name: str, default: bool) -> bool:
    value = obj.get(name, default)
    if not isinstance(value, bool):
        raise UnexpectedResponseError(f"{name}: expected a boolean, got {value!r}")
    return value


def epoch_ms_to_datetime(ms: int) -> datetime:
    """Exact (no float rounding): ``to_ms(epoch_ms_to_datetime(x)) == x``."""
    return EPOCH + timedelta(milliseconds=ms)


def from_ms(value: Any, what: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UnexpectedResponseError(f"{what}: expected epoch milliseconds, got {value!r}")
    return epoch_ms_to_datetime(value)


def time_field(obj: Mapping[str, Any], name: str) -> datetime:
    return from_ms(field(obj, name), name)


def to_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("datetimes sent to the exchange must be timezone-aware")
    return (moment - EPOCH) // timedelta(milliseconds=1)


def wire_decimal(value: Decimal, what: str) -> str:
    """A positive Decimal in plain notation (``1E+1`` → ``"10"``); floats are refused."""
    if not isinstance(value, Decimal):
        raise TypeError(f"{what} must be a Decimal, not {type(value).__name__}")
    if not value.is_finite() or value <= 0:
        raise ValueError(f"{what} must be a positive finite decimal, got {value}")
    return format(value.normalize(), "f")


def check_market(market: str) -> str:
    """Markets go into URL paths and queries unencoded: allow only ``BASE-QUOTE``."""
    if not isinstance(market, str) or not _MARKET.match(market):
        raise ValueError(f"not a market name: {market!r}")
    return market


def check_symbol(symbol: str) -> str:
    if not isinstance(symbol, str) or not _SYMBOL.match(symbol):
        raise ValueError(f"not an asset symbol: {symbol!r}")
    return symbol


def check_uuid(value: uuid.UUID | str, what: str) -> str:
    """The canonical lower-case string of a UUID (clientOrderId, orderId)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"{what} must be a UUID, got {value!r}") from None


def history_query(limit: int | None, start: datetime | None, end: datetime | None) -> dict[str, int]:
    """The ``limit``/``start``/``end`` options of the history endpoints (/orders, /trades)."""
    options: dict[str, int] = {}
    if limit is not None:
        if not 1 <= limit <= 1000:
            raise ValueError("limit must be between 1 and 1000")
        options["limit"] = limit
    if start is not None:
        options["start"] = to_ms(start)
    if end is not None:
        options["end"] = to_ms(end)
    return options
