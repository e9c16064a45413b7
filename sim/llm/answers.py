"""What the simulated LLM answers: a deterministic trade idea from the market data in the prompt.

The prompt format is the scanner's (services/scanner/llm_analyst.py): the last user message
carries one fenced JSON block (```json … ```) whose ``format`` is ``oracle.scan.v1``, with the
market's closing prices oldest first and the order-size bounds. The answer is the strict JSON the
scanner asks for: ``{"side", "amount_eur", "confidence", "rationale"}``.

Rule: the last close against the simple moving average of the last (up to) 20 closes. More than
0.1 % above → buy, more than 0.1 % below → sell, otherwise hold; confidence grows with the
distance (50 below 0.5 %, 75 below 1.5 %, else 100; hold is 0); the amount is the smallest
order allowed (``min_order_eur``). No market data in the prompt → hold.
"""

from __future__ import annotations

import json
import re
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

PROMPT_FORMAT = "oracle.scan.v1"
SMA_WINDOW = 20
THRESHOLD_PCT = Decimal("0.1")
_BLOCK = re.compile(r"```json\s*(\{.*?\})\s*```", re.DOTALL)


def market_data(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The ``oracle.scan.v1`` block of the last user message, or None."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if not isinstance(content, str):
            return None
        match = _BLOCK.search(content)
        if match is None:
            return None
        try:
            data = json.loads(match.group(1))
        except ValueError:
            return None
        return data if isinstance(data, dict) and data.get("format") == PROMPT_FORMAT else None
    return None


def _hold(rationale: str) -> dict[str, Any]:
    return {"side": "hold", "amount_eur": "0", "confidence": 0, "rationale": rationale}


def decide(data: dict[str, Any] | None) -> dict[str, Any]:
    """The answer object for ``data`` (see the module docstring)."""
    if data is None:
        return _hold("no oracle.scan.v1 market data in the prompt")
    try:
        closes = [Decimal(str(c)) for c in data.get("closes", [])]
        min_order = Decimal(str(data.get("min_order_eur", "0")))
    except (InvalidOperation, TypeError):
        return _hold("market data not readable")
    if not closes or any(c <= 0 for c in closes):
        return _hold("no usable closing prices")
    window = closes[-SMA_WINDOW:]
    sma = sum(window, Decimal(0)) / len(window)
    last = closes[-1]
    distance_pct = (last - sma) / sma * 100
    text = f"last close {last} is {distance_pct:.2f}% {'above' if distance_pct >= 0 else 'below'} its {len(window)}-candle SMA {sma:.8g}"
    if abs(distance_pct) <= THRESHOLD_PCT:
        return _hold(text + ": no clear trend")
    magnitude = abs(distance_pct)
    confidence = 50 if magnitude < Decimal("0.5") else 75 if magnitude < Decimal("1.5") else 100
    return {
        "side": "buy" if distance_pct > 0 else "sell",
        "amount_eur": str(min_order.quantize(Decimal("0.01"), rounding=ROUND_DOWN)),
        "confidence": confidence,
        "rationale": text,
    }
