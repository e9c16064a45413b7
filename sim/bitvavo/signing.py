"""Request authentication, exactly as Bitvavo (and SDK 1.4.3) sign: pure functions, no server state.

Signed string: ``timestamp + METHOD + path + body`` where ``path`` is the raw request path as sent
(it starts with ``/v2`` and carries the raw, un-re-encoded query string) and ``body`` is the JSON
body re-serialised compactly (``separators=(',', ':')``) in the key order it arrived in. The SDK
sends the body with spaces but signs the compact form, so signing the raw bytes would reject every
order. An empty body and ``{}`` add nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sim.bitvavo.errors import SimError

DEFAULT_WINDOW_MS = 10_000
MIN_WINDOW_MS = 100
MAX_WINDOW_MS = 60_000
_HEX = frozenset(string.hexdigits.lower())


def compact_body(body: Any) -> str:
    """The body as it enters the signature: nothing for ``None`` or ``{}``, else compact JSON."""
    if body is None or (isinstance(body, Mapping) and len(body) == 0):
        return ""
    return json.dumps(body, separators=(",", ":"))


def signed_payload(timestamp: int | str, method: str, path: str, body: Any) -> str:
    return f"{timestamp}{method.upper()}{path}{compact_body(body)}"


def sign(secret: str, timestamp: int | str, method: str, path: str, body: Any = None) -> str:
    """Lower-case hex HMAC-SHA256 of the signed string, as ``createSignature`` computes it."""
    payload = signed_payload(timestamp, method, path, body)
    return hmac.new(secret.encode("utf-8"), payload.encode("utf-8"), hashlib.sha256).hexdigest()


def verify(secret: str, signature: str, *, timestamp: int | str, method: str, path: str, body: Any) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, method, path, body), signature.lower())


@dataclass(frozen=True)
class ApiKey:
    """An API key the simulator knows: its secret, the account it acts for, and its permissions
    (``view``, ``trade``; a production setup has a view-only key and a trade key on one account)."""

    key: str
    secret: str = field(repr=False)
    account: str
    permissions: frozenset[str] = frozenset({"view", "trade"})
    active: bool = True

    @property
    def can_trade(self) -> bool:
        return "trade" in self.permissions

    @property
    def can_view(self) -> bool:
        return "view" in self.permissions


def authenticate(
    headers: Mapping[str, str],
    *,
    method: str,
    raw_path: str,
    body: Any,
    keys: Mapping[str, ApiKey],
    arrival_ms: int,
    latest_ms: int | None = None,
) -> ApiKey | None:
    """The key a request acts as, ``None`` when it carries no key; raises ``SimError`` 300–309.

    ``headers`` maps lower-case header names to values (HTTP header names are case-insensitive).
    ``arrival_ms`` is the exchange's clock when the request arrived: a timestamp more than the window
    before it is 304 (the request came too late). ``latest_ms`` (default ``arrival_ms``) bounds
    timestamps in the future the same way (the simulator's test clock jumps raise it).
    """
    presented = headers.get("bitvavo-access-key")
    if presented is None or presented == "":
        return None
    if len(presented) != 64:
        raise SimError(301)
    api_key = keys.get(presented)
    if api_key is None:
        raise SimError(305)
    if not api_key.active:
        raise SimError(306)
    raw_ts = headers.get("bitvavo-access-timestamp")
    if raw_ts is None or not raw_ts.strip().isdigit():
        raise SimError(302)
    timestamp = int(raw_ts.strip())
    if timestamp < 10**12:  # seconds, not milliseconds
        raise SimError(302)
    raw_window = headers.get("bitvavo-access-window")
    window = DEFAULT_WINDOW_MS
    if raw_window is not None and raw_window != "":
        if not raw_window.strip().isdigit():
            raise SimError(303)
        window = int(raw_window.strip())
    if not MIN_WINDOW_MS <= window <= MAX_WINDOW_MS:
        raise SimError(303)
    if arrival_ms - timestamp > window or timestamp - (arrival_ms if latest_ms is None else latest_ms) > window:
        raise SimError(304)
    signature = headers.get("bitvavo-access-signature") or ""
    if len(signature) != 64 or not set(signature.lower()) <= _HEX:
        raise SimError(308)
    if not verify(api_key.secret, signature, timestamp=raw_ts.strip(), method=method, path=raw_path, body=body):
        raise SimError(309)
    return api_key
