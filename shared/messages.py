"""Values in gRPC messages: how a servicer writes times, decimals and page positions.

Each servicer translates between its protos and its domain; the conversions every one of them
needs live here once (reading request fields is shared/fields.py's job):

- :func:`timestamp` / :func:`optional_timestamp`: an aware ``datetime`` as a
  ``google.protobuf.Timestamp`` (an unset optional field stays unset);
- :func:`decimal_string`: a ``Decimal`` as a plain decimal string, no exponent;
- :func:`page` / :func:`position`: keyset pagination by ``(time, id)``: a page of rows fetched
  with one extra, the opaque token of the next page, and the position such a token names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from shared import fields
from shared.errors import InvalidArgument

T = TypeVar("T")

_NOT_OURS = "is not a token from a previous page"


def timestamp(moment: datetime) -> Timestamp:
    """``moment`` as a protobuf Timestamp."""
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def optional_timestamp(moment: datetime | None) -> Timestamp | None:
    """``moment`` as a protobuf Timestamp; None (the field left unset) for None."""
    return None if moment is None else timestamp(moment)


def decimal_string(value: Decimal) -> str:
    """A decimal string without exponent or trailing zeros beyond the unit."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def page(found: Sequence[T], size: int, key: Callable[[T], tuple[datetime, str]]) -> tuple[list[T], str]:
    """The first ``size`` of ``found`` (fetched with ``size + 1``) and the next page's token
    (empty on the last page), which names the ``(time, id)`` key of the page's last row."""
    if len(found) <= size:
        return list(found), ""
    moment, ident = key(found[size - 1])
    return list(found[:size]), fields.encode_page_token({"t": moment.isoformat(), "i": ident})


def position(token: str, field: str = "page_token") -> tuple[datetime, str] | None:
    """The ``(time, id)`` key a token from :func:`page` names; None for the first page."""
    named = fields.decode_page_token(token, field)
    if named is None:
        return None
    try:
        return datetime.fromisoformat(str(named["t"])), fields.uuid_str(str(named["i"]), field)
    except (KeyError, ValueError, InvalidArgument):
        raise InvalidArgument.one(field, _NOT_OURS) from None
