"""What every HTTP request to the exchange leaves behind: its span's attributes and its metrics.

The official SDK sends its requests with ``requests``; ``shared.telemetry`` instruments that
library (one client span per request, whatever code path sends it) and installs the two hooks
below. They add what helps debugging — the endpoint (markets in the path replaced by
``{market}``), the market and clientOrderId the request names, the exchange's error code — and
count requests by endpoint and code, the weight budget the exchange reports, and bans (105).

Nothing secret is read or written here: the hooks look at the method, the path, the query, the
JSON body's ``market``/``clientOrderId`` and the answer's ``errorCode`` and rate-limit header —
never the value of a request header (the key, the signature and its timestamp travel in headers), never
the body's other fields, never the error's text.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from opentelemetry.trace import Span, Status, StatusCode

from shared.metrics import LATENCY_BUCKETS, meter

_meter = meter("exchange")

REQUESTS = _meter.create_counter(
    "oracle_exchange_requests",
    unit="{request}",
    description="HTTP requests answered by the exchange, by endpoint and code (ok, an errorCode, or http_<status>)",
)
DURATION = _meter.create_histogram(
    "oracle_exchange_request_duration",
    unit="s",
    description="Time the exchange took to answer, by endpoint",
    explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
)
WEIGHT_REMAINING = _meter.create_gauge(
    "oracle_exchange_weight_remaining",
    description="The rate-limit weight the exchange last reported as left, by limit (key: signed requests; ip: unsigned)",
)
BANS = _meter.create_counter(
    "oracle_exchange_bans", unit="{ban}", description="Answers saying this client is banned (errorCode 105)"
)

BANNED = 105
_MARKET = re.compile(r"^[A-Z0-9]{1,15}-[A-Z0-9]{1,15}$")
_VERSION = re.compile(r"^/v\d+(?=/)")
_SHOWN_FIELDS = ("market", "clientOrderId", "orderId")


def endpoint(method: str, url: str) -> str:
    """``GET /{market}/book`` for ``https://…/v2/BTC-EUR/book?depth=1``: a bounded label."""
    path = _VERSION.sub("", urlsplit(url).path.rstrip("/") or "/")
    parts = ["{market}" if _MARKET.match(p) else p for p in path.split("/")]
    return f"{method.upper()} {'/'.join(parts)}"


def _named(request: Any) -> dict[str, str]:
    """The market, clientOrderId and orderId a request names (query or JSON body)."""
    found = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items() if k in _SHOWN_FIELDS and v}
    body = request.body
    if body:
        try:
            data = json.loads(body)
        except (TypeError, ValueError, UnicodeDecodeError):
            data = None
        if isinstance(data, dict):
            found |= {k: str(data[k]) for k in _SHOWN_FIELDS if k in data}
    return found


def request_hook(span: Span, request: Any) -> None:
    """Name the request on its span before it is sent."""
    span.update_name(f"exchange {endpoint(request.method, request.url)}")
    span.set_attribute("exchange.endpoint", endpoint(request.method, request.url))
    for name, value in _named(request).items():
        span.set_attribute(f"exchange.{name}", value)


def error_code(response: Any) -> str:
    """``ok``, the exchange's ``errorCode``, or ``http_<status>`` for an answer without one."""
    if response.status_code < 400:
        return "ok"
    try:
        payload = response.json()
    except ValueError:
        payload = None
    code = payload.get("errorCode") if isinstance(payload, dict) else None
    return str(code) if isinstance(code, int) and not isinstance(code, bool) else f"http_{response.status_code}"


def response_hook(span: Span, request: Any, response: Any) -> None:
    """Record the answer: its code on the span, and the request, weight and ban metrics."""
    name = endpoint(request.method, request.url)
    code = error_code(response)
    span.set_attribute("exchange.error_code", code)
    if code != "ok":
        span.set_status(Status(StatusCode.ERROR, f"exchange error {code}"))
    REQUESTS.add(1, {"endpoint": name, "code": code})
    DURATION.record(response.elapsed.total_seconds(), {"endpoint": name})
    # Bitvavo weighs signed requests per API key and unsigned ones per IP address: two budgets.
    # Whether the request was signed is read from the header's presence, never its value.
    limit = {"limit": "key" if "bitvavo-access-key" in request.headers else "ip"}
    remaining = response.headers.get("bitvavo-ratelimit-remaining")
    if remaining is not None and remaining.lstrip("-").isdigit():
        WEIGHT_REMAINING.set(int(remaining), limit)
    if code == str(BANNED):
        BANS.add(1)
        WEIGHT_REMAINING.set(0, limit)


def start() -> None:
    """Make the ban series exist at 0 (the alert rules read it before any ban)."""
    BANS.add(0)
