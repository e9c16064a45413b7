"""The analysts without network: the rule analyst is deterministic on its candles; the LLM
analyst's answer validation refuses everything that is not exactly the promised JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.scanner.analyst import AnalysisRequest, NoTrade, OrderBounds, RuleAnalyst, TradeIdea, size_for
from services.scanner.llm_analyst import PROMPT_FORMAT, estimate_prompt_tokens, parse_answer, prompt_messages
from services.scanner.market_data import MarketSnapshot
from shared.exchange.market import Candle
from sim.llm.answers import decide, market_data

BOUNDS = OrderBounds(min_eur=Decimal("10"), max_eur=Decimal("50"), min_confidence=50)
T0 = datetime(2031, 1, 1, tzinfo=UTC)


def snapshot(closes: list[str]) -> MarketSnapshot:
    candles = tuple(
        Candle(T0 + timedelta(minutes=i), Decimal(c), Decimal(c), Decimal(c), Decimal(c), Decimal(1))
        for i, c in enumerate(closes)
    )
    return MarketSnapshot(
        market="BTC-EUR",
        status="trading",
        price=Decimal(closes[-1]),
        bid=None,
        ask=None,
        volume_24h=None,
        min_order_quote=Decimal("5"),
        candle_interval="1m",
        candles=candles,
        fetched_at=T0,
    )


def request(closes: list[str]) -> AnalysisRequest:
    return AnalysisRequest("u", snapshot(closes), BOUNDS)


def test_rule_analyst_buys_a_rising_market_and_sells_a_falling_one() -> None:
    rising = request([str(100 + i) for i in range(30)])
    falling = request([str(200 - i) for i in range(30)])
    buy = RuleAnalyst().analyse(rising)
    sell = RuleAnalyst().analyse(falling)
    assert isinstance(buy, TradeIdea) and buy.side == "buy"
    assert isinstance(sell, TradeIdea) and sell.side == "sell"
    for idea in (buy, sell):
        assert idea.confidence in (25, 50, 75, 100)
        assert BOUNDS.min_eur <= idea.amount_eur <= BOUNDS.max_eur
        assert idea.amount_eur == idea.amount_eur.quantize(Decimal("0.01"))
        assert idea.rationale and idea.model == "rules-v1"
    assert RuleAnalyst().analyse(rising) == buy, "deterministic"


def test_rule_analyst_holds_a_flat_market_and_without_enough_candles() -> None:
    flat = RuleAnalyst().analyse(request(["100"] * 30))
    assert isinstance(flat, NoTrade) and flat.reason == "HOLD"
    short = RuleAnalyst().analyse(request(["100", "101", "102"]))
    assert isinstance(short, NoTrade) and short.reason == "NOT_ENOUGH_DATA"


def test_order_size_grows_with_confidence_within_bounds() -> None:
    assert size_for(BOUNDS, 0) == Decimal("10.00")
    assert size_for(BOUNDS, 50) == Decimal("30.00")
    assert size_for(BOUNDS, 100) == Decimal("50.00")


def answer(**fields: object) -> str:
    return json.dumps({"side": "buy", "amount_eur": "12.50", "confidence": 75, "rationale": "up", **fields})


def test_a_valid_answer_is_a_trade_idea() -> None:
    idea = parse_answer(answer(), "stop", "m")
    assert idea == TradeIdea(side="buy", amount_eur=Decimal("12.50"), confidence=75, rationale="up", model="m")
    assert parse_answer(answer(side="hold"), "stop", "m") == NoTrade("HOLD", "up")


@pytest.mark.parametrize(
    ("content", "finish", "reason"),
    [
        ("Sure! buy", "stop", "LLM_INVALID_JSON"),
        ("", "stop", "LLM_INVALID_JSON"),
        ("[1, 2]", "stop", "LLM_INVALID_JSON"),
        (answer(), "length", "LLM_INVALID_JSON"),
        (answer(side="moon"), "stop", "LLM_INVALID_SIDE"),
        (answer(side=None), "stop", "LLM_INVALID_SIDE"),
        (answer(confidence=30), "stop", "LLM_INVALID_CONFIDENCE"),
        (answer(confidence="75"), "stop", "LLM_INVALID_CONFIDENCE"),
        (answer(confidence=75.0), "stop", "LLM_INVALID_CONFIDENCE"),
        (answer(confidence=True), "stop", "LLM_INVALID_CONFIDENCE"),
        (answer(amount_eur="-25.00"), "stop", "LLM_INVALID_AMOUNT"),
        (answer(amount_eur="0"), "stop", "LLM_INVALID_AMOUNT"),
        (answer(amount_eur=12.5), "stop", "LLM_INVALID_AMOUNT"),
        (answer(amount_eur="12.505"), "stop", "LLM_INVALID_AMOUNT"),
        (answer(amount_eur="NaN"), "stop", "LLM_INVALID_AMOUNT"),
        (answer(amount_eur="Infinity"), "stop", "LLM_INVALID_AMOUNT"),
        (answer(amount_eur="ten"), "stop", "LLM_INVALID_AMOUNT"),
        (answer(rationale=5), "stop", "LLM_INVALID_RATIONALE"),
        (answer(rationale="x" * 4001), "stop", "LLM_INVALID_RATIONALE"),
    ],
)
def test_an_answer_that_does_not_validate_is_refused_with_its_reason(content: str, finish: str, reason: str) -> None:
    decision = parse_answer(content, finish, "m")
    assert isinstance(decision, NoTrade)
    assert decision.reason == reason


def test_the_prompt_carries_the_market_data_block_the_simulator_reads() -> None:
    rising = request([str(100 + i) for i in range(30)])
    messages = prompt_messages(rising)
    data = market_data([dict(m) for m in messages])
    assert data is not None and data["format"] == PROMPT_FORMAT
    assert data["closes"][-1] == "129" and data["min_order_eur"] == "10"
    assert decide(data)["side"] == "buy"
    assert estimate_prompt_tokens(messages) > 0


def test_the_simulator_holds_without_market_data() -> None:
    assert decide(market_data([{"role": "user", "content": "hello"}]))["side"] == "hold"
