"""The analysts without network: the rule analyst is deterministic on its candles; the LLM
analyst's answer validation refuses everything that is not exactly the promised JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.scanner.analyst import (
    MAX_AMOUNT_EUR,
    AnalysisRequest,
    NoTrade,
    OrderBounds,
    RuleAnalyst,
    TradeIdea,
    size_for,
    storable,
)
from services.scanner.llm_analyst import (
    PROMPT_FORMAT,
    estimate_prompt_tokens,
    model_name,
    parse_answer,
    prompt_messages,
)
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
    idea = parse_answer(answer(), "stop", "m", BOUNDS)
    assert idea == TradeIdea(side="buy", amount_eur=Decimal("12.50"), confidence=75, rationale="up", model="m")
    assert parse_answer(answer(side="hold"), "stop", "m", BOUNDS) == NoTrade("HOLD", "up")
    # the bounds themselves are allowed, and an amount is kept in cents
    for text, amount in (("10", "10.00"), ("50.00", "50.00"), ("1E+1", "10.00")):
        edge = parse_answer(answer(amount_eur=text), "stop", "m", BOUNDS)
        assert isinstance(edge, TradeIdea) and str(edge.amount_eur) == amount


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
        (answer(amount_eur="1E+30"), "stop", "LLM_INVALID_AMOUNT"),
        (answer(amount_eur="123456789012345678901234.5"), "stop", "LLM_INVALID_AMOUNT"),
        (answer(amount_eur="1000000000.01"), "stop", "LLM_INVALID_AMOUNT"),
        (answer(amount_eur="-Infinity"), "stop", "LLM_INVALID_AMOUNT"),
        (answer(amount_eur="sNaN"), "stop", "LLM_INVALID_AMOUNT"),
        (answer(amount_eur="50.01"), "stop", "LLM_INVALID_AMOUNT"),  # above max_order_eur
        (answer(amount_eur="9.99"), "stop", "LLM_INVALID_AMOUNT"),  # below min_order_eur
        (answer(amount_eur="\u0661\u0662"), "stop", "LLM_INVALID_AMOUNT"),  # Arabic-Indic "12"
        (answer(amount_eur="1_2"), "stop", "LLM_INVALID_AMOUNT"),
        (answer(amount_eur=" 12"), "stop", "LLM_INVALID_AMOUNT"),
        (answer(amount_eur="12\n"), "stop", "LLM_INVALID_AMOUNT"),
        (answer(rationale="up\ud800"), "stop", "LLM_INVALID_RATIONALE"),  # PostgreSQL cannot store it
        (answer(rationale="up\x00"), "stop", "LLM_INVALID_RATIONALE"),
        (answer(rationale=5), "stop", "LLM_INVALID_RATIONALE"),
        (answer(rationale="x" * 4001), "stop", "LLM_INVALID_RATIONALE"),
    ],
)
def test_an_answer_that_does_not_validate_is_refused_with_its_reason(content: str, finish: str, reason: str) -> None:
    decision = parse_answer(content, finish, "m", BOUNDS)
    assert isinstance(decision, NoTrade)
    assert decision.reason == reason
    assert "\x00" not in decision.detail and len(decision.detail) <= 500


def test_no_amount_above_the_hard_ceiling_passes_whatever_the_bounds() -> None:
    wide = OrderBounds(min_eur=Decimal("1"), max_eur=Decimal("1E+17"), min_confidence=0)
    refused = parse_answer(answer(amount_eur="1000000000.01"), "stop", "m", wide)
    assert isinstance(refused, NoTrade) and refused.reason == "LLM_INVALID_AMOUNT"
    top = parse_answer(answer(amount_eur=str(MAX_AMOUNT_EUR)), "stop", "m", wide)
    assert isinstance(top, TradeIdea) and top.amount_eur == MAX_AMOUNT_EUR


@pytest.mark.parametrize(
    "reported",
    [None, "", "gpt\x00evil", "gpt\x1b[2J", "a" * 201, "gpt\ud800", " padded", "gpt\u200bzero-width", 42],
)
def test_a_model_name_that_is_not_clean_falls_back_to_the_configured_one(reported: object) -> None:
    assert model_name(reported, "gpt-4o-mini") == "gpt-4o-mini"


def test_a_clean_model_name_is_kept() -> None:
    assert model_name("gpt-4o-mini-2024-07-18", "x") == "gpt-4o-mini-2024-07-18"
    assert model_name("m" * 200, "x") == "m" * 200


def idea(**fields: object) -> TradeIdea:
    values: dict[str, object] = {
        "side": "buy",
        "amount_eur": Decimal("12.50"),
        "confidence": 50,
        "rationale": "up",
        "model": "rules-v1",
        **fields,
    }
    return TradeIdea(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        idea(amount_eur=Decimal("1E+30")),
        idea(amount_eur=MAX_AMOUNT_EUR + Decimal("0.01")),
        idea(amount_eur=Decimal("NaN")),
        idea(amount_eur=Decimal("Infinity")),
        idea(amount_eur=Decimal("0")),
        idea(amount_eur=Decimal("0.004")),  # would round to 0.00 in numeric(20, 2)
        idea(amount_eur=Decimal("-1")),
        idea(amount_eur=12.5),
        idea(side="hold"),
        idea(confidence=30),
        idea(confidence=True),
        idea(rationale=None),
        None,
        NoTrade(reason="lower case"),
    ],
)
def test_an_idea_no_proposal_may_carry_is_refused_as_invalid(bad: object) -> None:
    decision = storable(bad)
    assert isinstance(decision, NoTrade)
    assert decision.reason == "INVALID_IDEA"


def test_a_storable_idea_is_cleaned_not_refused() -> None:
    cleaned = storable(
        idea(
            amount_eur=Decimal("1E+1"),
            rationale="up\x00\ud800" + "x" * 5000,
            model="m\x00\x1b" + "o" * 300,
            indicators={"gap\x00": "1\ud800"},
        )
    )
    assert isinstance(cleaned, TradeIdea)
    assert str(cleaned.amount_eur) == "10.00"
    assert cleaned.rationale.startswith("upx") and len(cleaned.rationale) == 4000
    assert cleaned.model == "m" + "o" * 199
    assert cleaned.indicators == {"gap": "1"}
    assert storable(NoTrade("HOLD", "flat\x00")) == NoTrade("HOLD", "flat")
    rising = RuleAnalyst().analyse(request([str(100 + i) for i in range(30)]))
    assert storable(rising) == rising  # what the rule analyst proposes is stored as it is


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
