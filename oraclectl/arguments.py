"""Parsing of command-line values: durations (``90s``, ``5m``, ``1h30m``), market lists
(``BTC-EUR,ETH-EUR`` or repeated flags), decimals and USD amounts. Bad values are
``typer.BadParameter`` (exit code 2) naming what is wrong; the services validate again."""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

import typer

_DURATION = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s?)?$")
_MARKET = re.compile(r"^[A-Z0-9]{1,16}-EUR$")


def seconds(text: str) -> int:
    """``90``, ``90s``, ``5m``, ``1h30m`` → seconds."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not text.strip() or match is None:
        raise typer.BadParameter(f"{text!r} is not a duration like 90s, 5m or 1h30m")
    return sum(int(match.group(unit) or 0) * size for unit, size in (("h", 3600), ("m", 60), ("s", 1)))


def markets(values: Iterable[str]) -> list[str]:
    """Markets from repeated and/or comma-separated values, upper-cased, in order, without repeats."""
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            market = part.strip().upper()
            if not market:
                continue
            if not _MARKET.fullmatch(market):
                raise typer.BadParameter(f"{part.strip()!r} is not a EUR market like BTC-EUR")
            if market not in out:
                out.append(market)
    return out


def decimal_text(text: str, name: str) -> str:
    """A non-negative decimal, returned as the canonical string the protos carry."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise typer.BadParameter(f"{name}: {text!r} is not a decimal number") from None
    if not value.is_finite() or value < 0:
        raise typer.BadParameter(f"{name}: must be a non-negative number")
    return format(value, "f")


def usd_micros(text: str) -> int:
    """A USD amount (``2.50``) → integer micros of USD."""
    value = Decimal(decimal_text(text, "USD amount"))
    micros = value.scaleb(6)
    if micros != micros.to_integral_value():
        raise typer.BadParameter("USD amounts have at most 6 decimal places")
    return int(micros)
