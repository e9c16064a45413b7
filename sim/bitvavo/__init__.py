"""A local Bitvavo REST v2 exchange for tests and the demo (not production code).

``BitvavoSimulator`` serves the API the official SDK talks to, faithful to the fact sheet
(signing, errors, weights, order objects); ``SimulatorAdmin`` drives it from tests. See README.md.
"""

from sim.bitvavo.accounts import (
    DEFAULT_ACCOUNT,
    DEFAULT_TRADE_KEY,
    DEFAULT_TRADE_SECRET,
    DEFAULT_VIEW_KEY,
    DEFAULT_VIEW_SECRET,
    make_key,
)
from sim.bitvavo.admin import SimulatorAdmin
from sim.bitvavo.clock import SimClock
from sim.bitvavo.markets import DEFAULT_MARKETS, MarketSpec
from sim.bitvavo.server import BitvavoSimulator
from sim.bitvavo.signing import ApiKey

__all__ = [
    "DEFAULT_ACCOUNT",
    "DEFAULT_MARKETS",
    "DEFAULT_TRADE_KEY",
    "DEFAULT_TRADE_SECRET",
    "DEFAULT_VIEW_KEY",
    "DEFAULT_VIEW_SECRET",
    "ApiKey",
    "BitvavoSimulator",
    "MarketSpec",
    "SimClock",
    "SimulatorAdmin",
    "make_key",
]
