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

Whatever an analyst answers passes :func:`storable` before the scan writes anything: an idea
that could not be stored as a proposal (an amount outside ``0 < amount <= MAX_AMOUNT_EUR`` or not
in whole cents, an unknown side or confidence, text PostgreSQL refuses) becomes a ``NoTrade``
with reason ``INVALID_IDEA`` — one market's bad answer never makes the scan's write fail.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_DOWN, Decimal
from typing import Protocol

from services.scanner.market_data import MarketSnapshot
from shared.fields import CONFIDENCE_TEXT, CONFIDENCE_VALUES

BUY = "buy"
SELL = "sell"
CENT = Decimal("0.01")
# No proposal is ever larger, whatever a policy or an analyst says (trade_proposals.amount_quote
# is numeric(20, 2); this keeps far below its limit).
MAX_AMOUNT_EUR = Decimal(10) ** 9
MAX_RATIONALE = 4000
MAX_MODEL = 200
MAX_DETAIL = 500
MAX_INDICATORS = 32
MAX_INDICATOR_TEXT = 100
INVALID_IDEA = "INVALID_IDEA"
_REASON = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


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


# ------------------------------------------------------------------------------ storability
def clean_text(value: str) -> str:
    """``value`` without what PostgreSQL cannot store in text or jsonb: NUL and lone surrogates."""
    return "".join(c for c in value if c != "\x00" and not "\ud800" <= c <= "\udfff")


def is_model_name(value: object) -> bool:
    """A model name fit to store: 1..MAX_MODEL characters, no control, format or surrogate ones."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_MODEL
        and value.strip() == value
        and all(unicodedata.category(c)[0] != "C" for c in value)
    )


def _model(value: object) -> str:
    if is_model_name(value):
        return str(value)
    text = "".join(c for c in str(value) if unicodedata.category(c)[0] != "C").strip()[:MAX_MODEL].strip()
    return text or "unknown"


def storable(decision: object) -> Decision:
    """``decision`` as it can be stored: text cleaned and cut to size, the amount in whole cents;
    ``NoTrade(INVALID_IDEA)`` for an idea no proposal may carry. Never raises."""
    if isinstance(decision, NoTrade):
        return _storable_no_trade(decision)
    if not isinstance(decision, TradeIdea):
        return NoTrade(INVALID_IDEA, f"the analyst answered a {type(decision).__name__}")
    idea = decision
    problem = (
        _side_problem(idea.side)
        or _confidence_problem(idea.confidence)
        or _amount_problem(idea.amount_eur)
        or _rationale_problem(idea.rationale)
    )
    if problem is not None:
        return NoTrade(INVALID_IDEA, problem)
    cents = idea.amount_eur.quantize(CENT)  # safe: _amount_problem bounds it to at most 12 digits
    indicators = {}
    if isinstance(idea.indicators, Mapping):
        for key, value in list(idea.indicators.items())[:MAX_INDICATORS]:
            indicators[clean_text(str(key))[:MAX_INDICATOR_TEXT]] = clean_text(str(value))[:MAX_INDICATOR_TEXT]
    return replace(
        idea,
        amount_eur=cents,
        rationale=clean_text(idea.rationale)[:MAX_RATIONALE],
        model=_model(idea.model),
        indicators=indicators,
    )


def _storable_no_trade(no_trade: NoTrade) -> NoTrade:
    detail = clean_text(str(no_trade.detail))[:MAX_DETAIL]
    if isinstance(no_trade.reason, str) and _REASON.fullmatch(no_trade.reason):
        return NoTrade(no_trade.reason, detail)
    return NoTrade(INVALID_IDEA, f"not an UPPER_SNAKE reason: {clean_text(repr(no_trade.reason))[:100]}")


# What is wrong with one part of a TradeIdea an analyst returned (None: nothing). The parts are
# typed, but an analyst is outside code: storable() trusts no annotation.


def _side_problem(side: object) -> str | None:
    if side not in (BUY, SELL):
        return f"side {clean_text(repr(side))[:40]} is not buy or sell"
    return None


def _confidence_problem(confidence: object) -> str | None:
    if isinstance(confidence, bool) or not isinstance(confidence, int):
        return f"confidence {clean_text(repr(confidence))[:40]} is not an integer"
    if confidence not in CONFIDENCE_VALUES:
        return f"confidence {confidence} is not one of {CONFIDENCE_TEXT}"
    return None


def _amount_problem(amount: object) -> str | None:
    if not isinstance(amount, Decimal) or not amount.is_finite() or not 0 < amount <= MAX_AMOUNT_EUR:
        return f"amount {clean_text(repr(amount))[:60]} EUR is not in (0, {MAX_AMOUNT_EUR:f}]"
    if amount.quantize(CENT) != amount:
        return f"amount {amount} EUR is not in whole cents"
    return None


def _rationale_problem(rationale: object) -> str | None:
    if not isinstance(rationale, str):
        return f"the rationale is a {type(rationale).__name__}, not text"
    return None
