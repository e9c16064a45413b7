"""Request field validation: the one place that says what a well-formed id, market, amount,
duration, enum or page looks like. Each function returns the clean value or raises
InvalidArgument naming the field. Servicers call these before anything touches the database.

Every decimal string and every google.protobuf.Duration of every request goes through
:func:`decimal` and :func:`duration`: one strict grammar (ASCII digits only, no underscores, no
padding, a bounded exponent) and bounds checked on the integers before any conversion, so a
malformed or overflowing value is INVALID_ARGUMENT naming its field, never INTERNAL."""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from google.protobuf.duration_pb2 import Duration

from shared.errors import FieldViolation, InvalidArgument

T = TypeVar("T")

_USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$")
_MARKET = re.compile(r"^[A-Z0-9]{1,16}-EUR$")
MAX_TEXT = 4000
# A decimal string: optional minus, ASCII digits (``[0-9]``, not ``\d``, which admits "١٢٣"),
# optional fraction, optional exponent. Nothing else: no "_", no spaces, no "+", no NaN/Infinity.
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE](?P<exponent>[+-]?[0-9]+))?")
MAX_DECIMAL_TEXT = 40
MAX_EXPONENT = 20  # |exponent| of "1.5e3"-style input; "1e999999" never reaches Decimal arithmetic
# Longest duration any request may carry (before each field's own rule): ten years.
MAX_DURATION_SECONDS = 10 * 366 * 86400
# The confidence levels a proposal may carry and a policy may require: the one list in Python
# (the scanner's analysts, the executor's validators and policy checks read it). The database's
# domain oracle.confidence (migration 0001) allows the same values; a test compares the two.
CONFIDENCE_VALUES = (0, 25, 50, 75, 100)
CONFIDENCE_TEXT = ", ".join(map(str, CONFIDENCE_VALUES))


def user_id(value: str, field: str = "user_id") -> str:
    """A user id: 1–64 characters of letters, digits and _ . : @ -; not starting with a symbol."""
    if not value:
        raise InvalidArgument.one(field, "is required")
    if not _USER_ID.fullmatch(value):
        raise InvalidArgument.one(field, "must be 1-64 characters: letters, digits, _ . : @ -")
    return value


def uuid_str(value: str, field: str) -> str:
    """A UUID in canonical lower-case form."""
    if not value:
        raise InvalidArgument.one(field, "is required")
    if len(value) > 64:
        raise InvalidArgument.one(field, "must be a UUID")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidArgument.one(field, "must be a UUID") from None


def market(value: str, field: str = "market") -> str:
    """A EUR market like BTC-EUR."""
    if not value:
        raise InvalidArgument.one(field, "is required")
    if not _MARKET.fullmatch(value):
        raise InvalidArgument.one(field, "must be a EUR market like BTC-EUR")
    return value


# The upper bound of a decimal field whose caller names none.
_DEFAULT_MAXIMUM = Decimal("1000000000")


def decimal(
    value: str,
    field: str,
    *,
    places: int = 2,
    minimum: Decimal | None = Decimal(0),
    maximum: Decimal | None = _DEFAULT_MAXIMUM,
    allow_empty: bool = False,
) -> Decimal | None:
    """Like :func:`required_decimal`; with ``allow_empty`` an empty string is None (not given)."""
    if value == "" and allow_empty:
        return None
    return required_decimal(value, field, places=places, minimum=minimum, maximum=maximum)


def required_decimal(
    value: str,
    field: str,
    *,
    places: int = 2,
    minimum: Decimal | None = Decimal(0),
    maximum: Decimal | None = _DEFAULT_MAXIMUM,
) -> Decimal:
    """A decimal string with at most ``places`` decimals within [minimum, maximum]; never empty.

    Strict: ASCII digits, an optional leading "-", an optional fraction and an optional exponent
    of at most :data:`MAX_EXPONENT`; at most :data:`MAX_DECIMAL_TEXT` characters."""
    if value == "":
        raise InvalidArgument.one(field, "is required")
    if len(value) > MAX_DECIMAL_TEXT:
        raise InvalidArgument.one(field, "is too long for an amount")
    match = _DECIMAL.fullmatch(value)
    if match is None:
        raise InvalidArgument.one(
            field, "must be a decimal number like 12.50 (ASCII digits; no spaces, underscores or signs but -)"
        )
    exponent_text = match.group("exponent")
    if exponent_text is not None and abs(int(exponent_text)) > MAX_EXPONENT:
        raise InvalidArgument.one(field, f"must have an exponent between -{MAX_EXPONENT} and {MAX_EXPONENT}")
    try:
        number = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the grammar admits only finite decimals
        raise InvalidArgument.one(field, "must be a decimal number like 12.50") from None
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -places:
        raise InvalidArgument.one(field, f"must have at most {places} decimals")
    if minimum is not None and number < minimum:
        raise InvalidArgument.one(field, f"must be at least {minimum}")
    if maximum is not None and number > maximum:
        raise InvalidArgument.one(field, f"must be at most {maximum}")
    return number


def duration(
    value: Duration,
    field: str,
    *,
    minimum: timedelta = timedelta(0),
    maximum: timedelta = timedelta(seconds=MAX_DURATION_SECONDS),
) -> timedelta:
    """A whole-second google.protobuf.Duration within [minimum, maximum].

    The bounds are compared on the message's integers before any conversion: seconds = 2^63-1
    (or its negative) is a refusal naming the field, not an OverflowError."""
    if value.nanos != 0:
        raise InvalidArgument.one(field, "must be whole seconds")
    low, high = int(minimum.total_seconds()), int(maximum.total_seconds())
    if not low <= value.seconds <= high:
        raise InvalidArgument.one(field, f"must be between {low} and {high} seconds")
    return timedelta(seconds=value.seconds)


def enum(value: int, field: str, allowed: set[int] | frozenset[int] | range) -> int:
    """An enum value other than 0 (_UNSPECIFIED) and among ``allowed``."""
    if value == 0:
        raise InvalidArgument.one(field, "must be set (the _UNSPECIFIED value is not allowed)")
    if value not in allowed:
        raise InvalidArgument.one(field, f"unknown value {value}")
    return value


def confidence(value: int, field: str = "confidence") -> int:
    """One of :data:`CONFIDENCE_VALUES`."""
    if value not in CONFIDENCE_VALUES:
        raise InvalidArgument.one(field, f"must be one of {CONFIDENCE_TEXT}")
    return value


def text(value: str, field: str, *, max_len: int = MAX_TEXT, required: bool = False) -> str:
    """Free text, bounded; no NUL characters."""
    if required and not value.strip():
        raise InvalidArgument.one(field, "is required")
    if len(value) > max_len:
        raise InvalidArgument.one(field, f"must be at most {max_len} characters")
    if "\x00" in value:
        raise InvalidArgument.one(field, "must not contain NUL characters")
    return value


def page_size(value: int, field: str = "page_size", *, default: int = 50, maximum: int = 500) -> int:
    """0 means the default; otherwise 1..maximum."""
    if value == 0:
        return default
    if value < 0 or value > maximum:
        raise InvalidArgument.one(field, f"must be between 1 and {maximum}")
    return value


def encode_page_token(position: dict[str, Any]) -> str:
    """An opaque token for the next page (the last row's sort key)."""
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode()


def decode_page_token(value: str, field: str = "page_token") -> dict[str, Any] | None:
    """The position of a token from :func:`encode_page_token`; None for the first page."""
    if not value:
        return None
    if len(value) > 512:
        raise InvalidArgument.one(field, "is not a token from a previous page")
    try:
        position = json.loads(base64.urlsafe_b64decode(value.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidArgument.one(field, "is not a token from a previous page") from None
    if not isinstance(position, dict):
        raise InvalidArgument.one(field, "is not a token from a previous page")
    return position


class FieldErrors:
    """Collects the violations of every field, so one INVALID_ARGUMENT names them all.

    ``check(lambda: fields.user_id(req.user_id), "")`` returns the clean value, or the fallback
    after noting the violation; ``raise_if_any()`` raises once at the end.
    """

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def check(self, validate: Callable[[], T], fallback: T) -> T:
        """The validated value, or ``fallback`` after recording why it is bad."""
        try:
            return validate()
        except InvalidArgument as exc:
            self.violations.extend(exc.violations)
            return fallback

    def add(self, field: str, description: str) -> None:
        """Record a violation found by the caller's own rule."""
        self.violations.append(FieldViolation(field, description))

    def integer(self, value: int, field: str, *, minimum: int, maximum: int) -> int:
        """An integer within [minimum, maximum]."""
        if not minimum <= value <= maximum:
            self.add(field, f"must be between {minimum} and {maximum}")
        return value

    def raise_if_any(self) -> None:
        """Raise InvalidArgument naming every recorded field."""
        if self.violations:
            raise InvalidArgument(self.violations)
