"""Analysts: one interface, two implementations (the rule-based one here, the LLM in llm_analyst.py).

An analyst gets one market's snapshot and the order-size bounds (the user's live policy limits,
raised to the market's own minimum) and answers a :class:`TradeIdea` (side, amount in EUR,
confidence in {0, 25, 50, 75, 100}, rationale) or a :class:`NoTrade` with an UPPER_SNAKE reason
(``HOLD``, ``NOT_ENOUGH_DATA``, ``BUDGET_EXHAUSTED``, ``LLM_INVALID_JSON`` …). It never trades and
never decides whether a trade is allowed: the executor does, against the live policy.

:class:`RuleAnalyst` is the default: no network, deterministic on the candles it is given. A
short simple moving average (5 closes) crossing the long one (20 closes) by more than 0.2 %,
confirmed by the momentum over the last 5 candles, is a buy (above) or a sell (below); anything
else holds. Confidence grows with the gap; the amount grows from the policy minimum to its
maximum with the confidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Protocol

from services.scanner.market_data import MarketSnapshot

BUY = "buy"
SELL = "sell"
CENT = Decimal("0.01")
CONFIDENCE_LEVELS = (0, 25, 50, 75, 100)


@dataclass(frozen=True)
class OrderBounds:
    """What a proposal's size must respect: the policy's min/max (the minimum raised to the
    market's own minimum order in EUR) and the policy's minimum confidence."""

    min_eur: Decimal
    max_eur: Decimal
    min_confidence: int


@dataclass(frozen=True)
class AnalysisRequest:
    """One market of one user's scan."""

    user_id: str
    snapshot: MarketSnapshot
    bounds: OrderBounds


@dataclass(frozen=True)
class TradeIdea:
    """A proposed trade; the executor decides whether it happens."""

    side: str  # buy | sell
    amount_eur: Decimal
    confidence: int
    rationale: str
    model: str
    indicators: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NoTrade:
    """No proposal for this market, and why (an UPPER_SNAKE reason, plus free-text detail)."""

    reason: str
    detail: str = ""


Decision = TradeIdea | NoTrade


class Analyst(Protocol):
    """Turns one market snapshot into a decision."""

    @property
    def kind(self) -> str:
        """``rules`` or ``llm`` (stored on the proposal)."""
        ...

    def analyse(self, request: AnalysisRequest) -> Decision:
        """The decision for one market. Must not raise for a bad answer: return NoTrade."""
        ...


def sma(values: Sequence[Decimal], window: int) -> Decimal:
    """Mean of the last ``window`` values (at least one value)."""
    tail = values[-window:]
    return sum(tail, Decimal(0)) / len(tail)


def size_for(bounds: OrderBounds, confidence: int) -> Decimal:
    """An order size from ``bounds.min_eur`` (confidence 0) to ``bounds.max_eur`` (100), in cents."""
    span = bounds.max_eur - bounds.min_eur
    amount = (bounds.min_eur + span * confidence / 100).quantize(CENT, rounding=ROUND_DOWN)
    return max(amount, bounds.min_eur.quantize(CENT, rounding=ROUND_DOWN))


class RuleAnalyst:
    """SMA crossover with momentum confirmation; no network, deterministic."""

    MODEL = "rules-v1"
    SHORT = 5
    LONG = 20
    THRESHOLD_PCT = Decimal("0.2")

    @property
    def kind(self) -> str:
        return "rules"

    def analyse(self, request: AnalysisRequest) -> Decision:
        closes = request.snapshot.closes
        if len(closes) < self.LONG + 1:
            return NoTrade("NOT_ENOUGH_DATA", f"{len(closes)} candles, {self.LONG + 1} needed")
        short, long = sma(closes, self.SHORT), sma(closes, self.LONG)
        gap_pct = (short - long) / long * 100
        momentum_pct = (closes[-1] - closes[-1 - self.SHORT]) / closes[-1 - self.SHORT] * 100
        indicators = {
            f"sma_{self.SHORT}": f"{short:.8g}",
            f"sma_{self.LONG}": f"{long:.8g}",
            "gap_pct": f"{gap_pct:.4f}",
            "momentum_pct": f"{momentum_pct:.4f}",
        }
        text = (
            f"SMA{self.SHORT} {short:.8g} vs SMA{self.LONG} {long:.8g} (gap {gap_pct:.2f}%), "
            f"momentum over {self.SHORT} candles {momentum_pct:.2f}%"
        )
        if gap_pct > self.THRESHOLD_PCT and momentum_pct > 0:
            side = BUY
        elif gap_pct < -self.THRESHOLD_PCT and momentum_pct < 0:
            side = SELL
        else:
            return NoTrade("HOLD", text)
        magnitude = abs(gap_pct)
        confidence = 25 if magnitude <= Decimal("0.5") else 50 if magnitude <= 1 else 75 if magnitude <= 2 else 100
        return TradeIdea(
            side=side,
            amount_eur=size_for(request.bounds, confidence),
            confidence=confidence,
            rationale=f"{side}: {text}",
            model=self.MODEL,
            indicators=indicators,
        )
