"""Accounts, their balances, and the API keys that act for them, with the simulator's defaults.

A balance is ``available`` plus ``inOrder`` (held by open orders) per symbol. The default setup is
the production one: account ``main`` with 10 000 EUR, reached by a trade key (view + trade) and a
view-only key. The default keys and secrets are public test constants, not credentials.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal

from sim.bitvavo.signing import ApiKey


def _hex64(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


DEFAULT_ACCOUNT = "main"
DEFAULT_EUR_BALANCE = Decimal("10000")
DEFAULT_TRADE_KEY = _hex64("sim-bitvavo/trade-key")
DEFAULT_TRADE_SECRET = _hex64("sim-bitvavo/trade-secret") + _hex64("sim-bitvavo/trade-secret-2")
DEFAULT_VIEW_KEY = _hex64("sim-bitvavo/view-key")
DEFAULT_VIEW_SECRET = _hex64("sim-bitvavo/view-secret") + _hex64("sim-bitvavo/view-secret-2")


def default_keys() -> tuple[ApiKey, ...]:
    return (
        ApiKey(DEFAULT_TRADE_KEY, DEFAULT_TRADE_SECRET, DEFAULT_ACCOUNT, frozenset({"view", "trade"})),
        ApiKey(DEFAULT_VIEW_KEY, DEFAULT_VIEW_SECRET, DEFAULT_ACCOUNT, frozenset({"view"})),
    )


def default_accounts() -> dict[str, dict[str, Decimal]]:
    return {DEFAULT_ACCOUNT: {"EUR": DEFAULT_EUR_BALANCE}}


def make_key(label: str, account: str, permissions: frozenset[str]) -> ApiKey:
    """A deterministic 64-character key and 128-character secret for ``label`` (tests add keys so)."""
    return ApiKey(_hex64(f"key/{label}"), _hex64(f"secret/{label}") * 2, account, permissions)


@dataclass
class Holding:
    available: Decimal = Decimal(0)
    in_order: Decimal = Decimal(0)


class Wallet:
    """One account's balances; mutated only under the simulator's lock."""

    def __init__(self, balances: dict[str, Decimal] | None = None) -> None:
        self.holdings: dict[str, Holding] = {}
        for symbol, amount in (balances or {}).items():
            self.holdings[symbol] = Holding(available=Decimal(amount))

    def get(self, symbol: str) -> Holding:
        return self.holdings.setdefault(symbol, Holding())

    def set(self, symbol: str, available: Decimal, in_order: Decimal | None = None) -> None:
        holding = self.get(symbol)
        holding.available = available
        if in_order is not None:
            holding.in_order = in_order

    def hold(self, symbol: str, amount: Decimal) -> None:
        holding = self.get(symbol)
        holding.available -= amount
        holding.in_order += amount

    def release(self, symbol: str, amount: Decimal) -> None:
        holding = self.get(symbol)
        holding.in_order -= amount
        holding.available += amount

    def credit(self, symbol: str, amount: Decimal) -> None:
        self.get(symbol).available += amount

    def debit_available(self, symbol: str, amount: Decimal) -> None:
        self.get(symbol).available -= amount

    def debit_held(self, symbol: str, amount: Decimal) -> None:
        self.get(symbol).in_order -= amount
