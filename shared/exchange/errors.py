"""Typed failures of the exchange clients: every SDK error dict and transport exception becomes one
of these, so callers decide on types, never on message text.

::

    ExchangeError                       base; .code is Bitvavo's errorCode when there was one
    ├── AuthenticationError             300–309, 313, 316–320: bad key, signature, timestamp, window
    ├── PermissionDeniedError           310–312: the key lacks trade / view / withdraw rights
    │   └── TradeCapableKeyError        a key that must be view-only can trade (refuse to start)
    ├── RateLimitedError                105 (and 103/104/112): .reset_at says when calls may resume
    ├── RequestRejectedError            a definitive refusal: nothing changed at the exchange
    │   ├── OrderRejectedError          an order call refused (203, 205, 212, 216, 217, 233,
    │   │                               235, 423–426, …; 220 on a placement is OutcomeUnknown:
    │   │                               an open order with that clientOrderId exists)
    │   └── OrderNotFoundError          240: no order under that id
    ├── NotSentError                    the request certainly never reached the exchange
    │   │                               (connection refused, connect timeout, DNS failure)
    │   ├── SigningDeadlinePassedError  the exchange clock was past the caller's signing
    │   │                               deadline when the request was to be signed: not signed
    │   └── WeightBudgetExceededError   the next request would spend more weight than the
    │                                   caller allowed: not sent
    ├── OutcomeUnknownError             a write that may or may not have taken effect: 101, 109,
    │                                   107/108/111, a read timeout, a connection lost after
    │                                   sending, 5xx or any answer that is not a known error/result
    ├── ExchangeUnavailableError        a read failed transiently (same causes): safe to retry
    └── UnexpectedResponseError         a read got JSON that is not what the endpoint promises

A refusal whose code is in :data:`MARKET_RULES_CODES` says the market's rules are not what the
caller checked the order against (:func:`says_market_rules_changed`).

For an order placement only three outcomes exist: a typed result, a definitive refusal
(``RequestRejectedError``, ``AuthenticationError``, ``PermissionDeniedError``,
``RateLimitedError``, ``NotSentError``: the order does not exist), or ``OutcomeUnknownError``
(look the order up by clientOrderId; never place it again).
"""

from __future__ import annotations

from datetime import datetime

# Refusals that say a market's rules differ from the ones the order was checked against: its
# limits (210 amount above the maximum, 212 below minOrderInBaseAsset, 217 below
# minOrderInQuoteAsset), its precision (422 not on tickSize, 429 too many decimals) or its status
# (219 no longer listed, 423 halted, 424 cancel-only, 425 auction, 426 auction matching). Codes as
# the exchange documents them; anyone caching the market list drops it on one of these.
MARKET_RULES_CODES = frozenset({210, 212, 217, 219, 422, 423, 424, 425, 426, 429})


class ExchangeError(Exception):
    """Base of every exchange client error. ``code`` is Bitvavo's errorCode, if any."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message if code is None else f"{code}: {message}")
        self.code = code
        self.message = message


class AuthenticationError(ExchangeError):
    """The exchange did not accept the request's credentials (300–309 and similar)."""


class PermissionDeniedError(ExchangeError):
    """The key is valid but lacks the permission the call needs (310–312)."""


class TradeCapableKeyError(PermissionDeniedError):
    """A key that must be view-only was able to pass the trade-permission check."""


class RateLimitedError(ExchangeError):
    """Rate limit exceeded (105): the key or IP is banned until ``reset_at`` (UTC) when known."""

    def __init__(self, message: str, *, code: int | None = None, reset_at: datetime | None = None) -> None:
        super().__init__(message, code=code)
        self.reset_at = reset_at


class RequestRejectedError(ExchangeError):
    """The exchange definitively refused the request; nothing changed there."""


class OrderRejectedError(RequestRejectedError):
    """An order placement or cancellation was definitively refused (``code`` says why)."""


class OrderNotFoundError(RequestRejectedError):
    """The exchange knows no order under the id asked for (240)."""


class NotSentError(ExchangeError):
    """The request never reached the exchange (nothing was sent)."""


class SigningDeadlinePassedError(NotSentError):
    """The exchange clock was past the caller's signing deadline at the moment of signing, so the
    request was neither signed nor sent. ``now_ms`` and ``deadline_ms`` are exchange time."""

    def __init__(self, message: str, *, now_ms: int, deadline_ms: int) -> None:
        super().__init__(message)
        self.now_ms = now_ms
        self.deadline_ms = deadline_ms


class WeightBudgetExceededError(NotSentError):
    """The next request would have spent more weight than the caller's budget: not sent."""


class OutcomeUnknownError(ExchangeError):
    """A state-changing request may or may not have taken effect."""


class ExchangeUnavailableError(ExchangeError):
    """A read failed for a transient reason (timeout, overload, connection loss, 5xx)."""


class UnexpectedResponseError(ExchangeError):
    """A read was answered with JSON that does not have the shape the endpoint promises."""


def says_market_rules_changed(exc: BaseException) -> bool:
    """A definitive refusal whose code says the market's rules are not what was checked."""
    return isinstance(exc, RequestRejectedError) and exc.code in MARKET_RULES_CODES
