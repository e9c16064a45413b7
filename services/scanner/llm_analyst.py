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

    {"side": "buy" | "sell" | "hold",
     "amount_eur": "<decimal string, min_order_eur <= amount <= max_order_eur, at most 2 decimals>",
     "confidence": 0 | 25 | 50 | 75 | 100, "rationale": "<text, at most 4000 characters>"}

Anything else is refused with a recorded reason and no proposal: ``LLM_INVALID_JSON`` (not a JSON
object, or cut off at max_tokens), ``LLM_INVALID_SIDE``, ``LLM_INVALID_CONFIDENCE`` (e.g. 30),
``LLM_INVALID_AMOUNT`` (missing, not a decimal string, not finite, zero, negative, too many
decimals, or outside the request's ``min_order_eur`` … ``max_order_eur`` — never above
``MAX_AMOUNT_EUR``), ``LLM_INVALID_RATIONALE`` (also: NUL or lone surrogates, which PostgreSQL
cannot store). A ``hold`` is ``HOLD``.

The answer's ``model`` (free text from the LLM server) is stored on the proposal only when it is
a clean name (at most 200 characters, no control characters); otherwise the configured model
name is.

Every call is reserved at the budget service first (services.scanner.budget_client: reserve → call →
commit, or release when the call was never made) and asks for at most the granted
``max_tokens``. An exhausted budget is ``BUDGET_EXHAUSTED`` and no request is sent. The client
never retries (``max_retries=0``): a retry would be a second, unbudgeted call.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

import openai
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
)
from openai.types.shared_params import ResponseFormatJSONObject

from services.scanner import metrics
from services.scanner.analyst import (
    CENT,
    MAX_AMOUNT_EUR,
    MAX_RATIONALE,
    AnalysisRequest,
    Decision,
    NoTrade,
    OrderBounds,
    TradeIdea,
    is_model_name,
)
from services.scanner.budget_client import BudgetClient, BudgetError, BudgetExhausted, BudgetUnavailable
from shared import fields
from shared.errors import InvalidArgument
from shared.fields import CONFIDENCE_TEXT, CONFIDENCE_VALUES

log = logging.getLogger(__name__)

PROMPT_FORMAT = "oracle.scan.v1"
SIDES = ("buy", "sell", "hold")
MAX_AMOUNT_TEXT = 40
# Tokens the chat format adds around each message and before the reply (OpenAI's documented
# counting uses 3 and 3; one more per message leaves room for a name field).
MESSAGE_FRAMING_TOKENS = 4
REPLY_PRIMING_TOKENS = 3

SYSTEM_PROMPT = (
    "You are a cautious crypto market analyst. You get one Bitvavo EUR market's recent closing "
    "prices (oldest first) and the allowed order size. Propose at most one trade. Answer with "
    'exactly one JSON object and nothing else: {"side": "buy" | "sell" | "hold", '
    '"amount_eur": "<decimal string between min_order_eur and max_order_eur, at most 2 decimals>", '
    f'"confidence": one of {CONFIDENCE_TEXT}, "rationale": "<one or two sentences>"}}. '
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
    """The prompt's tokens as reserved at the budget service: an upper bound, never a guess.

    No tokenizer makes more tokens than the text has UTF-8 bytes, so every message counts its
    content's and its role's bytes, plus the chat format's per-message framing; the reply's
    priming is added once. A characters-per-token ratio would not do: prompts full of digits
    tokenize near one token per character, and the day's last grant would overshoot."""
    return REPLY_PRIMING_TOKENS + sum(
        len(str(m.get("content") or "").encode()) + len(str(m.get("role") or "").encode()) + MESSAGE_FRAMING_TOKENS
        for m in messages
    )


def parse_answer(content: str | None, finish_reason: str | None, model: str, bounds: OrderBounds) -> Decision:
    """Validate an answer strictly against the request's ``bounds``; NoTrade with the reason when
    anything is off."""
    answer = _json_object(content, finish_reason)
    if isinstance(answer, NoTrade):
        return answer
    refused = _refused_fields(answer)
    if refused is not None:
        return refused
    side, confidence, rationale = answer["side"], answer["confidence"], answer.get("rationale", "")
    if side == "hold":
        return NoTrade("HOLD", rationale[:500])
    amount = _bounded_amount(answer.get("amount_eur"), bounds)
    if isinstance(amount, NoTrade):
        return amount
    return TradeIdea(side=str(side), amount_eur=amount, confidence=confidence, rationale=rationale, model=model)


def _json_object(content: str | None, finish_reason: str | None) -> dict[str, Any] | NoTrade:
    """The answer as a JSON object, or why it is none."""
    if finish_reason == "length":
        return NoTrade("LLM_INVALID_JSON", "the answer was cut off at max_tokens")
    try:
        answer = json.loads(content or "")
    except ValueError:
        return NoTrade("LLM_INVALID_JSON", f"not JSON: {(content or '')[:200]!r}")
    if not isinstance(answer, dict):
        return NoTrade("LLM_INVALID_JSON", f"not a JSON object: {type(answer).__name__}")
    return answer


def _refused_fields(answer: dict[str, Any]) -> NoTrade | None:
    """The first of side, confidence and rationale that is off, as a NoTrade; None when all hold."""
    side = answer.get("side")
    if side not in SIDES:
        return NoTrade("LLM_INVALID_SIDE", f"side {_shown(side)} is not one of {', '.join(SIDES)}")
    confidence = answer.get("confidence")
    if isinstance(confidence, bool) or not isinstance(confidence, int) or confidence not in CONFIDENCE_VALUES:
        return NoTrade("LLM_INVALID_CONFIDENCE", f"confidence {_shown(confidence)} is not one of {CONFIDENCE_TEXT}")
    rationale = answer.get("rationale", "")
    if not isinstance(rationale, str) or len(rationale) > MAX_RATIONALE or not _storable_text(rationale):
        return NoTrade(
            "LLM_INVALID_RATIONALE",
            f"rationale must be text of at most {MAX_RATIONALE} characters, without NUL or lone surrogates",
        )
    return None


def _bounded_amount(value: Any, bounds: OrderBounds) -> Decimal | NoTrade:
    """The answer's ``amount_eur`` in whole cents within ``bounds``, or why it is not."""
    amount = _amount(value)
    if amount is None:
        return NoTrade(
            "LLM_INVALID_AMOUNT",
            f"amount_eur {_shown(value)} is not a decimal string in (0, {MAX_AMOUNT_EUR:f}] with at most 2 decimals",
        )
    highest = min(bounds.max_eur, MAX_AMOUNT_EUR)
    if not bounds.min_eur <= amount <= highest:
        return NoTrade("LLM_INVALID_AMOUNT", f"amount_eur {_shown(value)} is outside {bounds.min_eur}..{highest} EUR")
    return amount.quantize(CENT)


def _shown(value: Any) -> str:
    """An answer's value for a NoTrade detail: repr (escapes NUL and surrogates), cut short."""
    return repr(value)[:60]


def _storable_text(text: str) -> bool:
    return "\x00" not in text and not any("\ud800" <= c <= "\udfff" for c in text)


def _amount(value: Any) -> Decimal | None:
    """A positive decimal string with at most 2 decimals, at most MAX_AMOUNT_EUR; None otherwise.

    The request grammar (shared.fields.decimal): ASCII digits only, so "١٠" or "1_0" from the
    model is refused rather than read as 10."""
    if not isinstance(value, str) or len(value) > MAX_AMOUNT_TEXT:
        return None
    try:
        return fields.decimal(value, "amount_eur", places=2, minimum=CENT, maximum=MAX_AMOUNT_EUR)
    except InvalidArgument:
        return None


def model_name(reported: object, configured: str) -> str:
    """The model to store for an answer: what the server reported when it is a clean name (at
    most 200 characters, no control characters), else the configured one."""
    return str(reported) if is_model_name(reported) else configured


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
        completion = self._budgeted_completion(request)
        if isinstance(completion, NoTrade):
            return completion
        if not completion.choices:
            return NoTrade("LLM_INVALID_JSON", "no choices in the answer")
        choice = completion.choices[0]
        model = model_name(completion.model, self._model)
        return parse_answer(choice.message.content, choice.finish_reason, model, request.bounds)

    def _budgeted_completion(self, request: AnalysisRequest) -> ChatCompletion | NoTrade:
        """One model call under a budget grant, its usage recorded; NoTrade when there is none."""
        messages = prompt_messages(request)
        try:
            with self._budget.call(
                request.user_id,
                f"scan:{request.snapshot.market}",
                self._model,
                estimated_prompt_tokens=estimate_prompt_tokens(messages),
                requested_max_tokens=self._max_tokens,
            ) as grant:
                grant.started()
                completion = self._completion(messages, grant.max_tokens)
                if isinstance(completion, NoTrade):
                    return completion
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
        return completion

    def _completion(self, messages: list[ChatCompletionMessageParam], max_tokens: int) -> ChatCompletion | NoTrade:
        """The model's answer; NoTrade when the call failed (the started grant is then left to expire)."""
        try:
            completion: ChatCompletion = metrics.llm_call(
                self._client.chat.completions.create,
                model=self._model,
                messages=messages,
                max_tokens=max_tokens,
                response_format=ResponseFormatJSONObject(type="json_object"),
                temperature=0,
            )
        except openai.APITimeoutError:
            return NoTrade("LLM_TIMEOUT", "the LLM did not answer in time")
        except openai.APIStatusError as exc:
            return NoTrade("LLM_ERROR", f"HTTP {exc.status_code}")
        except openai.APIConnectionError as exc:
            return NoTrade("LLM_UNAVAILABLE", type(exc).__name__)
        return completion
