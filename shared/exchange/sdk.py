"""The one place that builds the official SDK client (``python_bitvavo_api.bitvavo.Bitvavo``) and
calls it.

Every request goes through ``ProjectBitvavo``, the SDK's own client with its two request methods
replaced: requests are signed with the SDK's module-level ``createSignature`` over a timestamp
this project chooses — exchange time from ``ExchangeClock`` (``GET /time`` offset), never the
SDK's ``time.time()`` — and sent over one ``requests.Session`` per client (keep-alive) instead of
module-level ``requests.request``. What the SDK does with an answer is kept as it is: the body is
always read as JSON (a non-JSON body raises ``JSONDecodeError``), errors come back as dicts, and
``updateRateLimit`` sees the error dict (105 parsing) or the headers. ``sign_by_ms`` lets a caller
refuse to sign past a deadline in exchange time: the check is the last thing before signing, and
the signed timestamp is the one checked (``SigningDeadlinePassedError``, nothing sent).

It also owns: the SDK options (``restUrl``, a connect+read ``timeout`` – the SDK's default is none –
and ``accessWindow``); turning the SDK's error dicts (it returns errors, it never raises them) and
the ``requests`` exceptions it lets through into ``shared.exchange.errors``; retrying reads with
tenacity (bounded, only transient failures, waiting out a rate-limit ban only when it ends soon);
never retrying a write; and remembering the last rate-limit budget the exchange reported.

Whether nothing was sent is decided narrowly: only a failure to open the TCP connection (refused,
connect timeout, DNS) or a URL the client could not even build is ``NotSentError``. Everything
else that goes wrong after that point is, for a write, ``OutcomeUnknownError``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from types import MappingProxyType
from typing import Any, TypeVar

import requests
from python_bitvavo_api.bitvavo import Bitvavo, createSignature
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from urllib3.exceptions import MaxRetryError, NewConnectionError

from shared.exchange.clock import ExchangeClock
from shared.exchange.errors import (
    AuthenticationError,
    ExchangeError,
    ExchangeUnavailableError,
    NotSentError,
    OrderNotFoundError,
    OrderRejectedError,
    OutcomeUnknownError,
    PermissionDeniedError,
    RateLimitedError,
    RequestRejectedError,
    SigningDeadlinePassedError,
    UnexpectedResponseError,
)
from shared.exchange.weights import WeightMeter, request_weight
from shared.exchange.wire import as_mapping, epoch_ms_to_datetime, from_ms, to_ms

logger = logging.getLogger(__name__)

PRODUCTION_REST_URL = "https://api.bitvavo.com/v2"
_T = TypeVar("_T")
_BAN_EXPIRY = re.compile(r" at (\d+)\.")
ACCESS_WINDOW_REFUSED = 304  # "not received within the access window": our timestamp was off

# Codes that say "this may or may not have happened / try again": never a refusal.
_TRANSIENT_CODES = frozenset({101, 107, 108, 109, 111, 400, 419, 430})
_RATE_LIMIT_CODES = frozenset({103, 104, 105, 112})
_AUTH_CODES = frozenset({*range(300, 310), 313, *range(316, 321)})
_PERMISSION_CODES = frozenset({310, 311, 312})
# clientOrderId conflict: an OPEN order with this clientOrderId already exists on the market.
# On a write that is not a refusal to act on: the order under that id is live at the exchange
# (ours, placed earlier; or a placement whose answer was lost), so the outcome is unknown and the
# order must be looked up by its clientOrderId — never concluded absent.
CLIENT_ORDER_ID_CONFLICT = 220
# Definitive refusals: the request was understood and refused, nothing changed.
_REFUSAL_CODES = frozenset({102, 110, *range(200, 300), *(c for c in range(401, 432) if c not in _TRANSIENT_CODES)})


class CallKind(Enum):
    """READ has no effect at the exchange (retried); WRITE may have one (never retried)."""

    READ = "read"
    WRITE = "write"


def _errors_by_code(*groups: tuple[Iterable[int], type[ExchangeError]]) -> Mapping[int, type[ExchangeError]]:
    """One error class per code; the first group holding a code wins."""
    table: dict[int, type[ExchangeError]] = {}
    for codes, error in groups:
        for code in codes:
            table.setdefault(code, error)
    return MappingProxyType(table)


# The error a definitive code becomes on a read and on a write (rate limits, which carry their
# ban's end, are built in error_from_payload). A code in no table is transient or unknown.
_READ_ERRORS = _errors_by_code(
    (_AUTH_CODES, AuthenticationError),
    (_PERMISSION_CODES, PermissionDeniedError),
    ({240}, OrderNotFoundError),
    (_REFUSAL_CODES, RequestRejectedError),
)
_WRITE_ERRORS = _errors_by_code(
    (_AUTH_CODES, AuthenticationError),
    (_PERMISSION_CODES, PermissionDeniedError),
    ({240}, OrderNotFoundError),
    ({CLIENT_ORDER_ID_CONFLICT}, OutcomeUnknownError),
    (_REFUSAL_CODES, OrderRejectedError),
)


@dataclass(frozen=True)
class ApiCredentials:
    """An API key and its secret. The secret never appears in ``repr`` or logs."""

    key: str
    secret: str = field(repr=False)

    def __repr__(self) -> str:
        return f"ApiCredentials(key='{self.key[:6]}…')"


@dataclass(frozen=True)
class ExchangeSettings:
    """How to reach the exchange; production is the default URL, the simulator another one."""

    rest_url: str = PRODUCTION_REST_URL
    """Base URL including ``/v2``."""
    connect_timeout_s: float = 3.0
    """TCP connect timeout. A connect that fails is ``NotSentError``."""
    read_timeout_s: float = 10.0
    """Time to wait for an answer once sent. Running out is ``OutcomeUnknownError`` for writes."""
    access_window_ms: int = 10_000
    """``Bitvavo-Access-Window``: how late after signing the exchange still accepts a request."""
    read_attempts: int = 3
    """Attempts for a read (1 = no retry). Writes are always sent exactly once."""
    read_backoff_s: float = 0.2
    """First wait between read attempts; doubles each time, at most ``max_backoff_s``."""
    max_backoff_s: float = 2.0
    max_rate_limit_wait_s: float = 0.0
    """A read that hits a rate-limit ban waits for it to lift only if that is at most this far off."""
    clock_refresh_s: float = 300.0
    """A keyed client re-measures the exchange clock (``GET /time``) when its offset is this old."""
    connection_pool_size: int = 16
    """Keep-alive connections the client's one ``requests.Session`` keeps per host."""

    def __post_init__(self) -> None:
        if not 100 <= self.access_window_ms <= 60_000:
            raise ValueError("access_window_ms must be between 100 and 60000")
        if self.connect_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        if self.read_attempts < 1:
            raise ValueError("read_attempts must be at least 1")
        if self.clock_refresh_s <= 0 or self.connection_pool_size < 1:
            raise ValueError("clock_refresh_s and connection_pool_size must be positive")


class ProjectBitvavo(Bitvavo):  # type: ignore[misc]  # the SDK ships no type information
    """The official SDK client, signing with exchange time over one keep-alive session.

    Only ``publicRequest`` and ``privateRequest`` are replaced; every SDK method (``placeOrder``,
    ``getOrders``, ``trades``, …) builds its path and body as before and lands here.
    """

    def __init__(
        self, options: dict[str, Any], *, session: requests.Session, clock: ExchangeClock, meter: WeightMeter
    ) -> None:
        super().__init__(options)
        self.session = session
        self.clock = clock
        self.meter = meter

    def publicRequest(self, url: str) -> Any:
        path = url.replace(self.base, "")
        self.meter.add(request_weight("GET", path))
        if self.APIKEY != "":
            now = self.clock.now_ms()
            headers = self._auth_headers(now, createSignature(now, "GET", path, None, self.APISECRET))
            response = self.session.get(url, headers=headers, timeout=self.timeout)
        else:
            response = self.session.get(url, timeout=self.timeout)
        return self._answer(response)

    def privateRequest(self, endpoint: str, postfix: str, body: Any = None, method: str = "GET") -> Any:
        return self.signed_request(endpoint, postfix, body, method)

    def signed_request(
        self,
        endpoint: str,
        postfix: str,
        body: Any = None,
        method: str = "GET",
        *,
        sign_by_ms: int | None = None,
        timestamp_ms: int | None = None,
    ) -> Any:
        """``privateRequest`` with the timestamp chosen here: ``timestamp_ms`` if given, else the
        exchange clock now. With ``sign_by_ms`` (exchange time), refuse — raise
        ``SigningDeadlinePassedError`` and send nothing — when the clock or the timestamp is past
        it; checked immediately before signing, so what is signed is never past the deadline."""
        if sign_by_ms is not None:
            now = self.clock.now_ms()
            timestamp = now if timestamp_ms is None else timestamp_ms
            if max(now, timestamp) > sign_by_ms:
                raise SigningDeadlinePassedError(
                    f"exchange time {now} (timestamp {timestamp}) is past the signing deadline {sign_by_ms}",
                    now_ms=now,
                    deadline_ms=sign_by_ms,
                )
        else:
            timestamp = self.clock.now_ms() if timestamp_ms is None else timestamp_ms
        signature = createSignature(timestamp, method, endpoint + postfix, body, self.APISECRET)
        self.meter.add(request_weight(method, endpoint, postfix))
        response = self.session.request(
            method,
            self.base + endpoint + postfix,
            headers=self._auth_headers(timestamp, signature),
            json=body,
            timeout=self.timeout,
        )
        return self._answer(response)

    def _auth_headers(self, timestamp: int, signature: str) -> dict[str, str]:
        return {
            "bitvavo-access-key": self.APIKEY,
            "bitvavo-access-signature": signature,
            "bitvavo-access-timestamp": str(timestamp),
            "bitvavo-access-window": str(self.ACCESSWINDOW),
        }

    def _answer(self, response: requests.Response) -> Any:
        """The SDK's handling, unchanged: JSON always; the error dict or the headers feed the
        rate-limit bookkeeping (105 parsing included); errors are returned, not raised."""
        payload = response.json()
        if "error" in payload:
            self.updateRateLimit(payload)
        else:
            self.updateRateLimit(response.headers)
        return payload


@dataclass(frozen=True)
class RateLimitStatus:
    """The weight budget the exchange last reported for this client's key (or IP)."""

    remaining: int
    reset_at: datetime


def parse_ban_expiry(message: str) -> datetime | None:
    """The ban end in a 105 message ("… The ban expires at 1700000060000.")."""
    match = _BAN_EXPIRY.search(message)
    if match is None:
        return None
    return epoch_ms_to_datetime(int(match.group(1)))


def error_from_payload(payload: Any, kind: CallKind) -> ExchangeError | None:
    """The typed error for an SDK answer, or ``None`` when it is not an error."""
    if not isinstance(payload, Mapping) or ("errorCode" not in payload and "error" not in payload):
        return None
    raw_code = payload.get("errorCode")
    message = str(payload.get("error", ""))
    try:
        code = int(raw_code) if raw_code is not None and not isinstance(raw_code, bool) else None
    except (TypeError, ValueError):
        code = None
    # No code, a transient code (101, 107, 109, …) or one we do not know: it may have happened.
    unknown = OutcomeUnknownError if kind is CallKind.WRITE else ExchangeUnavailableError
    if code is None:
        return unknown(f"error without a code: {message}")
    if code in _RATE_LIMIT_CODES:
        return RateLimitedError(message, code=code, reset_at=parse_ban_expiry(message))
    errors = _WRITE_ERRORS if kind is CallKind.WRITE else _READ_ERRORS
    return errors.get(code, unknown)(message, code=code)


def never_sent(exc: BaseException) -> bool:
    """True only when the request provably did not leave this process."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(
        exc,
        requests.exceptions.InvalidURL
        | requests.exceptions.MissingSchema
        | requests.exceptions.InvalidSchema
        | requests.exceptions.InvalidHeader,
    ):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError) and not isinstance(exc, requests.exceptions.SSLError):
        for arg in exc.args:
            if isinstance(arg, NewConnectionError):
                return True
            if isinstance(arg, MaxRetryError) and isinstance(arg.reason, NewConnectionError):
                return True
    return False


def error_from_exception(exc: Exception, kind: CallKind, operation: str) -> ExchangeError:
    """The typed error for an exception raised out of an SDK call."""
    if never_sent(exc):
        return NotSentError(f"{operation}: not sent: {type(exc).__name__}: {exc}")
    what = f"{operation}: {type(exc).__name__}: {exc}"
    if kind is CallKind.WRITE:
        return OutcomeUnknownError(what)
    return ExchangeUnavailableError(what)


class BitvavoGateway:
    """One SDK client (with or without a key) and the policy for calling it. Thread-safe."""

    def __init__(
        self,
        settings: ExchangeSettings,
        credentials: ApiCredentials | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: ExchangeClock | None = None,
    ) -> None:
        """``clock``: the exchange clock requests are signed with (default: one measured with this
        client's ``GET /time`` when it has a key, re-measured every ``clock_refresh_s``)."""
        self.settings = settings
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=settings.connection_pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.meter = WeightMeter()
        if clock is None:
            fetch = self._server_time_ms if credentials is not None else None
            clock = ExchangeClock(fetch, refresh_after_s=settings.clock_refresh_s)
        self.clock = clock
        options: dict[str, Any] = {
            "restUrl": settings.rest_url.rstrip("/"),
            "timeout": (settings.connect_timeout_s, settings.read_timeout_s),
            "accessWindow": settings.access_window_ms,
        }
        if credentials is not None:
            options["apiKey"] = credentials.key
            options["apiSecret"] = credentials.secret
        self._sdk = ProjectBitvavo(options, session=self.session, clock=clock, meter=self.meter)
        self._sleep = sleep
        self._lock = threading.Lock()
        self._rate_limit: RateLimitStatus | None = None

    def close(self) -> None:
        """Close the keep-alive connections."""
        self.session.close()

    def _server_time_ms(self) -> int:
        """``GET /time``, unsigned (a signature over a wrong clock would be refused), on the session."""
        self.meter.add(1)
        response = self.session.get(
            self.settings.rest_url.rstrip("/") + "/time",
            timeout=(self.settings.connect_timeout_s, self.settings.read_timeout_s),
        )
        payload = response.json()
        error = error_from_payload(payload, CallKind.READ)
        if error is not None:
            raise error
        return to_ms(from_ms(as_mapping(payload, "time").get("time"), "time"))

    def _clock_ready(self, operation: str, kind: CallKind) -> None:
        """Re-measure a stale exchange clock before signing; a failure means nothing was sent."""
        if not self.clock.is_stale():
            return
        try:
            self.clock.refresh_if_stale()
        except ExchangeError as exc:
            if kind is CallKind.WRITE:
                raise NotSentError(f"{operation}: exchange clock not measured: {exc}") from exc
            raise
        except (requests.exceptions.RequestException, ValueError) as exc:
            if kind is CallKind.WRITE:
                raise NotSentError(f"{operation}: exchange clock not measured: {exc}") from exc
            raise error_from_exception(exc, kind, f"{operation}: GET /time") from exc

    @property
    def rate_limit(self) -> RateLimitStatus | None:
        """The last budget the exchange reported (``None`` before the first answer)."""
        with self._lock:
            return self._rate_limit

    def _remember_rate_limit(self, error: ExchangeError | None) -> None:
        remaining = int(self._sdk.rateLimitRemaining)
        reset_ms = int(self._sdk.rateLimitReset)
        if isinstance(error, RateLimitedError) and error.reset_at is not None:
            remaining, reset_ms = 0, to_ms(error.reset_at)
        if reset_ms <= 0:
            return
        with self._lock:
            self._rate_limit = RateLimitStatus(remaining, epoch_ms_to_datetime(reset_ms))

    def _once(self, operation: str, kind: CallKind, call: Callable[[ProjectBitvavo], Any]) -> Any:
        self._clock_ready(operation, kind)
        try:
            payload = call(self._sdk)
        except ExchangeError:
            raise
        except requests.exceptions.RequestException as exc:
            raise error_from_exception(exc, kind, operation) from exc
        except (ValueError, IndexError) as exc:
            # non-JSON bodies surface as JSONDecodeError (a ValueError); a 105 text the SDK cannot
            # parse as IndexError/ValueError from its own rate-limit bookkeeping
            raise error_from_exception(exc, kind, operation) from exc
        except Exception as exc:
            if kind is CallKind.WRITE:
                logger.exception("%s: unexpected failure inside the SDK call", operation)
                raise OutcomeUnknownError(f"{operation}: {type(exc).__name__}: {exc}") from exc
            raise
        error = error_from_payload(payload, kind)
        self._remember_rate_limit(error)
        if error is not None:
            if error.code == ACCESS_WINDOW_REFUSED:
                self.clock.invalidate()  # our idea of exchange time is off: measure before the next
            raise error
        return payload

    def write(self, operation: str, call: Callable[[ProjectBitvavo], Any]) -> Any:
        """Call once, never again: a write's failure is final for this call."""
        return self._once(operation, CallKind.WRITE, call)

    def place_order(
        self,
        market: str,
        side: str,
        order_type: str,
        body: Mapping[str, Any],
        *,
        sign_by_ms: int | None = None,
        timestamp_ms: int | None = None,
    ) -> Any:
        """``POST /order`` once (a write), with the body the SDK's ``placeOrder`` would send (the
        caller's keys, then market, side, orderType). ``sign_by_ms`` (exchange time) is the
        signing deadline: past it at the moment of signing, ``SigningDeadlinePassedError`` (a
        ``NotSentError``) and nothing is sent. ``timestamp_ms`` signs with that timestamp instead
        of the exchange clock (never past ``sign_by_ms`` either). Returns the answer as the SDK
        does; errors are raised as the typed errors of ``write``."""
        full = dict(body)
        full["market"] = market
        full["side"] = side
        full["orderType"] = order_type
        return self.write(
            "place order",
            lambda sdk: sdk.signed_request(
                "/order", "", full, "POST", sign_by_ms=sign_by_ms, timestamp_ms=timestamp_ms
            ),
        )

    def read(self, operation: str, call: Callable[[ProjectBitvavo], Any]) -> Any:
        """Call, retrying transient failures (and a ban that lifts soon) a bounded number of times."""
        settings = self.settings

        def retryable(exc: BaseException) -> bool:
            if isinstance(exc, ExchangeUnavailableError | NotSentError):
                return True
            if isinstance(exc, RateLimitedError) and exc.reset_at is not None:
                return _seconds_until(exc.reset_at) <= settings.max_rate_limit_wait_s
            return False

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome is not None else None
            if isinstance(exc, RateLimitedError) and exc.reset_at is not None:
                return max(_seconds_until(exc.reset_at), 0.0) + 0.05
            backoff = settings.read_backoff_s * 2 ** (state.attempt_number - 1)
            return float(min(backoff, settings.max_backoff_s))

        def log_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            logger.warning("%s failed (attempt %d), retrying: %s", operation, state.attempt_number, exc)

        retrying = Retrying(
            stop=stop_after_attempt(settings.read_attempts),
            wait=wait,
            retry=retry_if_exception(retryable),
            reraise=True,
            sleep=self._sleep,
            before_sleep=log_retry,
        )
        return retrying(self._once, operation, CallKind.READ, call)

    def read_as(self, operation: str, call: Callable[[ProjectBitvavo], Any], parse: Callable[[Any], _T]) -> _T:
        """``read`` and then ``parse`` the answer (a malformed answer is ``UnexpectedResponseError``)."""
        payload = self.read(operation, call)
        try:
            return parse(payload)
        except UnexpectedResponseError:
            raise
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise UnexpectedResponseError(f"{operation}: {type(exc).__name__}: {exc}") from exc


def _seconds_until(moment: datetime) -> float:
    return (moment - datetime.now(tz=UTC)).total_seconds()
