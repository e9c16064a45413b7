"""Digit-heavy prompts never push a user's daily tokens or cost past their limits.

A storm of LLM analyst calls (the real LlmAnalyst: the official ``openai`` client, every call
reserved at the real budget service) against the LLM simulator, which counts digits like a real
tokenizer (one token each), so a prompt full of prices runs near one token per character. What
the LLM reported using is counted at the simulator; what the budget counted is read from
GetUsage. Neither may pass the limit: the reservation holds the prompt at its UTF-8 byte length.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import openai
import pytest
from oracle.budget.v1 import budget_service_pb2 as budget_pb

from services.budget.config import load_settings as budget_settings
from services.scanner.analyst import AnalysisRequest, Decision, NoTrade, OrderBounds
from services.scanner.budget_client import BudgetClient
from services.scanner.llm_analyst import LlmAnalyst
from services.scanner.market_data import MarketSnapshot
from shared.exchange.market import Candle
from tests.harness import SCANNER_TOKEN, Postgres, new_user_id
from tests.integration.budget.servers import Budget, in_process_budget, service_env
from tests.integration.scanner.kit import Llm

MODEL = "gpt-4o-mini"
MAX_TOKENS = 64
CALLS = 48
THREADS = 8
T0 = datetime(2031, 1, 1, tzinfo=UTC)


@pytest.fixture
def budget(postgres: Postgres) -> Iterator[Budget]:
    with in_process_budget(postgres) as server:
        yield server


def digit_heavy(user_id: str, n: int) -> AnalysisRequest:
    """A market whose prompt is mostly digits: 80 closes with many decimals."""
    closes = [Decimal(f"{34000 + n + i}.{(i * 7919 + n) % 10**8:08d}") for i in range(80)]
    candles = tuple(Candle(T0 + timedelta(minutes=i), c, c, c, c, Decimal(1)) for i, c in enumerate(closes))
    snapshot = MarketSnapshot(
        market="BTC-EUR",
        status="trading",
        price=closes[-1],
        bid=None,
        ask=None,
        volume_24h=None,
        min_order_quote=Decimal(5),
        candle_interval="1m",
        candles=candles,
        fetched_at=T0,
    )
    return AnalysisRequest(user_id, snapshot, OrderBounds(Decimal(10), Decimal(50), 50))


def storm(llm: Llm, budget: Budget, user_id: str) -> list[Decision]:
    """CALLS analyses on THREADS threads at once, each thread with its own clients."""
    start = threading.Barrier(THREADS)

    def worker(index: int) -> list[Decision]:
        budget_client = BudgetClient(budget.target, SCANNER_TOKEN, timeout_seconds=60)
        try:
            with openai.OpenAI(base_url=llm.url, api_key="unset", max_retries=0, timeout=60) as client:
                analyst = LlmAnalyst(client, budget_client, model=MODEL, max_tokens=MAX_TOKENS)
                start.wait()
                return [analyst.analyse(digit_heavy(user_id, n)) for n in range(index, CALLS, THREADS)]
        finally:
            budget_client.close()

    with ThreadPoolExecutor(THREADS) as pool:
        return [d for ds in pool.map(worker, range(THREADS)) for d in ds]


def exhausted(decisions: list[Decision]) -> int:
    return sum(1 for d in decisions if isinstance(d, NoTrade) and d.reason == "BUDGET_EXHAUSTED")


def test_the_simulator_counts_digits_like_a_tokenizer(llm: Llm, budget: Budget) -> None:
    """The premise: this prompt costs far more tokens than four characters per token."""
    user = new_user_id("digits")
    (decision,) = [
        LlmAnalyst(
            openai.OpenAI(base_url=llm.url, api_key="unset", max_retries=0),
            BudgetClient(budget.target, SCANNER_TOKEN),
            model=MODEL,
            max_tokens=MAX_TOKENS,
        ).analyse(digit_heavy(user, 0))
    ]
    assert decision is not None
    ((prompt_tokens, _),) = llm.admin.usage()
    (request,) = llm.admin.requests()
    characters = sum(len(m["content"]) for m in request["messages"])
    assert prompt_tokens > characters / 2


def test_a_storm_of_digit_heavy_prompts_never_passes_the_token_limit(llm: Llm, budget: Budget) -> None:
    user = new_user_id("tokens")
    limit = 12_000  # room for a handful of these calls, far fewer than the storm makes
    budget.set_limits(user, daily=1000, hourly=1000, tokens=limit)

    decisions = storm(llm, budget, user)

    used_at_llm = sum(p + c for p, c in llm.admin.usage())
    assert 0 < llm.admin.completion_count() < CALLS
    assert exhausted(decisions) == CALLS - llm.admin.completion_count()
    assert used_at_llm <= limit
    window = budget.usage(user)[budget_pb.WINDOW_DAILY_TOKENS]
    assert window.used <= limit


def test_a_storm_of_digit_heavy_prompts_never_passes_the_cost_limit(
    postgres: Postgres, llm: Llm, budget: Budget
) -> None:
    user = new_user_id("cost")
    limit = 2_000  # micros of USD: a handful of calls at gpt-4o-mini's price
    budget.set_limits(user, daily=1000, hourly=1000, cost=limit)

    decisions = storm(llm, budget, user)

    price = budget_settings(service_env(postgres)).price_table().price(MODEL)
    cost_at_llm = sum(price.cost_micros(p, c) for p, c in llm.admin.usage())
    assert 0 < llm.admin.completion_count() < CALLS
    assert exhausted(decisions) == CALLS - llm.admin.completion_count()
    assert cost_at_llm <= limit
    window = budget.usage(user)[budget_pb.WINDOW_DAILY_COST]
    assert window.used <= limit
