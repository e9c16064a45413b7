"""How oraclectl (and the local stack's screen) say values to a person: money, coin amounts,
fees, USD budget amounts, times, durations, enum names, and a failed call.

One home for each rule, so the same amount never reads "10" in one place and "10.00" in another:

* EUR is money: two decimals and the currency, ``10.00 EUR`` (an amount below a cent that is not
  zero reads ``<0.01 EUR`` rather than a misleading ``0.00``);
* a coin amount is exact, without trailing zeros or exponent, and names its coin: ``0.00021 BTC``;
* a fee is money when charged in EUR, else a coin amount;
* USD (the LLM budget) is at least two decimals and exact to the micro-dollar it is counted in;
* every time is UTC, to the second: ``2026-11-30 04:31:07 UTC``;
* every duration or age reads ``1h30m`` / ``5m`` / ``45s`` (``3m ago`` for an age at a moment);
* a failed call reads code, reason and message once each (see :func:`failure_line`).

``--json`` output never goes through here: scripts get the services' own values.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.message import Message

from shared.errors import ErrorReport

CENT = Decimal("0.01")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"


def _decimal(text: str | Decimal) -> Decimal | None:
    try:
        value = text if isinstance(text, Decimal) else Decimal(text.strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def plain(value: Decimal) -> str:
    """A decimal written out exactly, without exponent or trailing zeros: ``0.00021``, ``12``."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def eur(amount: str | Decimal, *, empty: str = "-") -> str:
    """A EUR amount as money: ``10.00 EUR``; ``empty`` when there is none."""
    value = _decimal(amount) if amount != "" else None
    if value is None:
        return empty if amount == "" else f"{amount} EUR"
    cents = value.quantize(CENT, rounding=ROUND_HALF_EVEN)
    if cents == 0 and value != 0:
        return f"{'>-' if value < 0 else '<'}0.01 EUR"
    return f"{cents:.2f} EUR"


def coin(amount: str | Decimal, symbol: str, *, empty: str = "-") -> str:
    """A coin amount, exact, naming its coin: ``0.00021 BTC``."""
    value = _decimal(amount) if amount != "" else None
    if value is None:
        return empty if amount == "" else f"{amount} {symbol}".strip()
    return f"{plain(value)} {symbol}".strip()


def base_of(market: str) -> str:
    """The coin of a EUR market: ``BTC-EUR`` → ``BTC``."""
    return market.split("-", 1)[0]


def fee(amount: str, currency: str) -> str:
    """A fee: money when charged in EUR, else an amount of its coin; ``-`` when there is none."""
    if not amount:
        return "-"
    return eur(amount) if currency.upper() in ("EUR", "") else coin(amount, currency.upper())


def usd_micros(micros: int) -> str:
    """USD counted in micro-dollars, said in dollars: ``2.00 USD``, ``0.004213 USD``."""
    value = Decimal(micros).scaleb(-6)
    text = plain(value)
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')} USD"


def moment(value: timestamp_pb2.Timestamp | datetime | None) -> str:
    """A point in time, always the same way: ``2026-11-30 04:31:07 UTC``; empty when unknown."""
    if value is None:
        return ""
    stamp = value.ToDatetime(tzinfo=UTC) if isinstance(value, timestamp_pb2.Timestamp) else value.astimezone(UTC)
    return stamp.strftime(TIME_FORMAT)


def when(message: Message, name: str) -> str:
    """A Timestamp field as :func:`moment` says it, empty when unset."""
    if not message.HasField(name):
        return ""
    stamp: timestamp_pb2.Timestamp = getattr(message, name)
    return moment(stamp)


def format_seconds(seconds: int) -> str:
    """A duration as 1h30m / 5m / 45s."""
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def ago(message: Message, name: str, now: timestamp_pb2.Timestamp) -> str:
    """A Timestamp field as a moment and its age at ``now``: ``2026-11-30 04:31:07 UTC (3m ago)``;
    empty when unset."""
    if not message.HasField(name):
        return ""
    stamp: timestamp_pb2.Timestamp = getattr(message, name)
    seconds = max(now.seconds - stamp.seconds, 0)
    return f"{moment(stamp)} ({format_seconds(seconds)} ago)"


def span(message: Message, name: str) -> str:
    """A Duration field as :func:`format_seconds` says it, empty when unset."""
    if not message.HasField(name):
        return ""
    duration: duration_pb2.Duration = getattr(message, name)
    return format_seconds(duration.seconds)


def label(message: Message, name: str) -> str:
    """An enum field's value name without its type prefix, lower case: ``SIDE_BUY`` → ``buy``."""
    enum = message.DESCRIPTOR.fields_by_name[name].enum_type
    value = None if enum is None else enum.values_by_number.get(getattr(message, name))
    if enum is None or value is None:
        return str(getattr(message, name))
    prefix = enum.values[0].name.removesuffix("UNSPECIFIED")
    return value.name.removeprefix(prefix).lower()


# ------------------------------------------------------------------------------------ failures


def unreachable(service: str, address: str) -> str:
    """What a person reads when nothing answers at a service's address."""
    return f"cannot reach the {service} at {address}; is `make run` running?"


def is_unreachable(report: ErrorReport) -> bool:
    """A call that never reached a service: UNAVAILABLE from the client's own channel, which
    carries no ErrorInfo (a service saying UNAVAILABLE about a dependency always names a reason)."""
    return report.code.name == "UNAVAILABLE" and not report.reason and not report.details


def _listed(report: ErrorReport) -> str:
    """The message the services build from the violations they attach (shared/errors.py)."""
    if report.precondition_violations:
        return "; ".join(f"{v.type}: {v.description}" for v in report.precondition_violations)
    if report.field_violations:
        return "; ".join(f"{v.field}: {v.description}" for v in report.field_violations)
    if report.quota_violations:
        return "; ".join(f"{v.subject}: {v.description}" for v in report.quota_violations)
    return ""


def failure_message(report: ErrorReport) -> str:
    """The call's own message without what the line says already: the status code in words
    (``failed precondition: ``) and the reason (``MARKET_NOT_ALLOWLISTED: ``) are dropped from its
    start, and a message that only repeats the violations listed below it is dropped entirely."""
    message = " ".join(report.message.split())
    listed = " ".join(_listed(report).split())
    for prefix in (report.code.name.replace("_", " ").lower() + ": ", report.reason + ": "):
        if listed and message == listed:
            return ""
        if prefix.strip(": ") and message.lower().startswith(prefix.lower()):
            message = message[len(prefix) :]
    return "" if listed and message == listed else message


def failure_line(service: str, report: ErrorReport) -> str:
    """One line: ``executor: FAILED_PRECONDITION MARKET_NOT_ALLOWLISTED`` (the failed validators
    follow on their own lines), or ``budget: NOT_FOUND NOT_FOUND: user x not found`` folded to
    ``budget: NOT_FOUND: user x not found``."""
    code = report.code.name
    reason = f" {report.reason}" if report.reason and report.reason != code else ""
    message = failure_message(report)
    return f"{service}: {code}{reason}" + (f": {message}" if message else "")
