"""The LLM analyst: asks any OpenAI-compatible endpoint for one trade idea, paid for through the
budget service, and trusts nothing it answers until it validates.

Prompt format ``oracle.scan.v1`` (the LLM simulator in sim/llm reads the same block):

* a system message saying what to answer (below, :data:`SYSTEM_PROMPT`);
* one user message with a fenced JSON block::

      ```json
      {"format": "oracle.scan.v1", "market": "BTC-EUR", "price": "34243.5",
       "candle_interval": "1h", "closes": ["34100", …, "34243.5"],   # oldest first
       "min_order_eur": "10.00", "max_order_eur": "100.00", "min_confidence": 50}
      ```

The answer must be exactly one JSON object (``response_format`` json_object)::

    {"side": "buy" | "sell" | "hold", "amount_eur": "<decimal string, > 0, at most 2 decimals>",
     "confidence": 0 | 25 | 50 | 75 | 100, "rationale": "<text, at most 4000 characters>"}

Anything else is refused with a recorded reason and no proposal: ``LLM_INVALID_JSON`` (not a JSON
object, or cut off at max_tokens), ``LLM_INVALID_SIDE``, ``LLM_INVALID_CONFIDENCE`` (e.g. 30),
``LLM_INVALID_AMOUNT`` (missing, not a decimal string, zero, negative, too many decimals),
``LLM_INVALID_RATIONALE``. A ``hold`` is ``HOLD``.

Every call is reserved at the budget service first (shared.budget_client: reserve → call →
commit, or release when the call was never made) and asks for at most the granted
``max_tokens``. An exhausted budget is ``BUDGET_EXHAUSTED`` and no request is sent. The client
never retries (``max_retries=0``): a retry would be a second, unbudgeted call.
"""

from __future__ import annotations

import json
import logging
import math
from decimal import Decimal, InvalidOperation
from typing import Any

import openai
from openai.types.chat import (
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
)
from openai.types.shared_params import ResponseFormatJSONObject

from services.scanner.analyst import CONFIDENCE_LEVELS, AnalysisRequest, Decision, NoTrade, TradeIdea
from shared.budget_client import BudgetClient, BudgetError, BudgetExhausted, BudgetUnavailable

log = logging.getLogger(__name__)

PROMPT_FORMAT = "oracle.scan.v1"
SIDES = ("buy", "sell", "hold")
MAX_RATIONALE = 4000
CHARS_PER_TOKEN = 4

SYSTEM_PROMPT = (
    "You are a cautious crypto market analyst. You get one Bitvavo EUR market's recent closing "
    "prices (oldest first) and the allowed order size. Propose at most one trade. Answer with "
    'exactly one JSON object and nothing else: {"side": "buy" | "sell" | "hold", '
    '"amount_eur": "<decimal string between min_order_eur and max_order_eur, at most 2 decimals>", '
    '"confidence": one of 0, 25, 50, 75, 100, "rationale": "<one or two sentences>"}. '
    'Use "hold" when there is no clear trend.'
)


def prompt_messages(request: AnalysisRequest) -> list[ChatCompletionMessageParam]:
    """The chat messages for one market (format ``oracle.scan.v1``)."""
    snapshot = request.snapshot
    data = {
        "format": PROMPT_FORMAT,
        "market": snapshot.market,
        "price": str(snapshot.price),
        "candle_interval": snapshot.candle_interval,
        "closes": [str(c) for c in snapshot.closes],
        "min_order_eur": str(request.bounds.min_eur),
        "max_order_eur": str(request.bounds.max_eur),
        "min_confidence": request.bounds.min_confidence,
    }
    user = (
        f"Market data for {snapshot.market}. Propose at most one trade.\n"
        f"```json\n{json.dumps(data, separators=(',', ':'))}\n```"
    )
    return [
        ChatCompletionSystemMessageParam(role="system", content=SYSTEM_PROMPT),
        ChatCompletionUserMessageParam(role="user", content=user),
    ]


def estimate_prompt_tokens(messages: list[ChatCompletionMessageParam]) -> int:
    """A generous prompt-token estimate for the budget reservation (4 characters per token)."""
    return sum(math.ceil(len(str(m.get("content") or "")) / CHARS_PER_TOKEN) + 4 for m in messages)


def parse_answer(content: str | None, finish_reason: str | None, model: str) -> Decision:
    """Validate an answer strictly; NoTrade with the reason when anything is off."""
    if finish_reason == "length":
        return NoTrade("LLM_INVALID_JSON", "the answer was cut off at max_tokens")
    try:
        answer = json.loads(content or "")
    except ValueError:
        return NoTrade("LLM_INVALID_JSON", f"not JSON: {(content or '')[:200]!r}")
    if not isinstance(answer, dict):
        return NoTrade("LLM_INVALID_JSON", f"not a JSON object: {type(answer).__name__}")
    side = answer.get("side")
    if side not in SIDES:
        return NoTrade("LLM_INVALID_SIDE", f"side {side!r} is not one of {', '.join(SIDES)}")
    confidence = answer.get("confidence")
    if isinstance(confidence, bool) or not isinstance(confidence, int) or confidence not in CONFIDENCE_LEVELS:
        return NoTrade("LLM_INVALID_CONFIDENCE", f"confidence {confidence!r} is not one of 0, 25, 50, 75, 100")
    rationale = answer.get("rationale", "")
    if not isinstance(rationale, str) or len(rationale) > MAX_RATIONALE or "\x00" in rationale:
        return NoTrade("LLM_INVALID_RATIONALE", f"rationale must be text of at most {MAX_RATIONALE} characters")
    if side == "hold":
        return NoTrade("HOLD", rationale[:500])
    amount = _amount(answer.get("amount_eur"))
    if amount is None:
        return NoTrade(
            "LLM_INVALID_AMOUNT",
            f"amount_eur {answer.get('amount_eur')!r} is not a positive decimal string with at most 2 decimals",
        )
    return TradeIdea(side=str(side), amount_eur=amount, confidence=confidence, rationale=rationale, model=model)


def _amount(value: Any) -> Decimal | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        return None
    exponent = amount.as_tuple().exponent
    if not amount.is_finite() or amount <= 0 or not isinstance(exponent, int) or exponent < -2:
        return None
    return amount


class LlmAnalyst:
    """Asks an OpenAI-compatible model; every call reserved at the budget service."""

    def __init__(self, client: openai.OpenAI, budget: BudgetClient, *, model: str, max_tokens: int) -> None:
        self._client = client
        self._budget = budget
        self._model = model
        self._max_tokens = max_tokens

    @property
    def kind(self) -> str:
        return "llm"

    def analyse(self, request: AnalysisRequest) -> Decision:
        messages = prompt_messages(request)
        market = request.snapshot.market
        try:
            with self._budget.call(
                request.user_id,
                f"scan:{market}",
                self._model,
                estimated_prompt_tokens=estimate_prompt_tokens(messages),
                requested_max_tokens=self._max_tokens,
            ) as grant:
                grant.started()
                try:
                    completion = self._client.chat.completions.create(
                        model=self._model,
                        messages=messages,
                        max_tokens=grant.max_tokens,
                        response_format=ResponseFormatJSONObject(type="json_object"),
                        temperature=0,
                    )
                except openai.APITimeoutError:
                    return NoTrade("LLM_TIMEOUT", "the LLM did not answer in time")
                except openai.APIStatusError as exc:
                    return NoTrade("LLM_ERROR", f"HTTP {exc.status_code}")
                except openai.APIConnectionError as exc:
                    return NoTrade("LLM_UNAVAILABLE", type(exc).__name__)
                usage = completion.usage
                if usage is not None:
                    grant.record(usage.prompt_tokens, usage.completion_tokens)
                else:  # no usage reported: count what the call may have used
                    grant.record(estimate_prompt_tokens(messages), grant.max_tokens)
        except BudgetExhausted as exc:
            return NoTrade("BUDGET_EXHAUSTED", ",".join(exc.windows))
        except BudgetUnavailable:
            return NoTrade("BUDGET_UNAVAILABLE", "the budget service did not answer; no LLM call made")
        except BudgetError as exc:
            return NoTrade("BUDGET_REFUSED", exc.reason)
        if not completion.choices:
            return NoTrade("LLM_INVALID_JSON", "no choices in the answer")
        choice = completion.choices[0]
        return parse_answer(choice.message.content, choice.finish_reason, completion.model or self._model)
