"""The simulator's signing and rate-limit texts against the SDK's own functions and the documented
test vectors (pure functions: no network)."""

from __future__ import annotations

import json

import pytest
from python_bitvavo_api.bitvavo import createSignature

from sim.bitvavo.errors import SimError, ban_message, http_status_for
from sim.bitvavo.ratelimit import RateLimiter, weight
from sim.bitvavo.signing import ApiKey, authenticate, compact_body, sign, verify

SECRET = "bitvavo"
GET_VECTOR = "653fc0505431c63a043273da4bd2f0927eae83948d796084f313e5d1131b0d6f"
POST_VECTOR = "44d022723a20973a18f7ee97398b9fdd405d2d019c8d39e24b8cc0dcb39ca016"
POST_BODY = {"market": "BTC-EUR", "side": "buy", "price": "5000", "amount": "1.23", "orderType": "limit"}


def test_documented_get_vector_verifies() -> None:
    assert sign(SECRET, 1548175200641, "GET", "/v2/websocket") == GET_VECTOR
    assert verify(SECRET, GET_VECTOR, timestamp="1548175200641", method="GET", path="/v2/websocket", body=None)


def test_documented_post_vector_verifies_from_the_spaced_wire_body() -> None:
    # requests sends json= with spaces; the simulator parses and re-serialises compactly
    wire_body = json.dumps(POST_BODY).encode()
    assert b", " in wire_body
    received = json.loads(wire_body)
    assert verify(SECRET, POST_VECTOR, timestamp=1548172481125, method="POST", path="/v2/order", body=received)


def test_sdk_and_simulator_sign_identically() -> None:
    body = {"operatorId": 7, "clientOrderId": "4f273532-93c8-445d-b4a0-269a50155779", "market": "ETH-EUR"}
    ours = sign("s3cret", 1700000000000, "POST", "/v2/order", body)
    assert ours == createSignature(1700000000000, "POST", "/order", body, "s3cret")


def test_key_order_and_content_matter() -> None:
    reordered = dict(reversed(list(POST_BODY.items())))
    assert not verify(SECRET, POST_VECTOR, timestamp=1548172481125, method="POST", path="/v2/order", body=reordered)
    tampered = {**POST_BODY, "amount": "1.24"}
    assert not verify(SECRET, POST_VECTOR, timestamp=1548172481125, method="POST", path="/v2/order", body=tampered)


def test_empty_object_body_signs_as_no_body() -> None:
    assert compact_body({}) == ""
    assert compact_body(None) == ""
    assert sign(SECRET, 1, "GET", "/v2/time", {}) == sign(SECRET, 1, "GET", "/v2/time", None)


KEY = ApiKey("k" * 64, "secret", "main", frozenset({"view"}))


def _headers(ts: int, signature: str, window: str = "10000", key: str = KEY.key) -> dict[str, str]:
    return {
        "bitvavo-access-key": key,
        "bitvavo-access-timestamp": str(ts),
        "bitvavo-access-signature": signature,
        "bitvavo-access-window": window,
    }


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        (_headers(1_700_000_000_000, "0" * 64, key="short"), 301),
        (_headers(1_700_000_000_000, "0" * 64, key="x" * 64), 305),
        (_headers(1_700_000_000, "0" * 64), 302),
        (_headers(1_700_000_000_000, "0" * 64, window="99"), 303),
        (_headers(1_700_000_000_000, "0" * 64, window="60001"), 303),
        (_headers(1_700_000_000_000 - 10_001, "0" * 64), 304),
        (_headers(1_700_000_000_000, "xyz"), 308),
        (_headers(1_700_000_000_000, "0" * 64), 309),
    ],
)
def test_authentication_errors(headers: dict[str, str], code: int) -> None:
    with pytest.raises(SimError) as caught:
        authenticate(
            headers, method="GET", raw_path="/v2/balance", body=None, keys={KEY.key: KEY}, arrival_ms=1_700_000_000_000
        )
    assert caught.value.code == code
    assert caught.value.http_status == 403


def test_a_good_signature_authenticates() -> None:
    ts = 1_700_000_000_000
    signature = sign(KEY.secret, ts, "GET", "/v2/balance?symbol=EUR")
    found = authenticate(
        _headers(ts - 9_000, sign(KEY.secret, ts - 9_000, "GET", "/v2/balance?symbol=EUR")),
        method="GET",
        raw_path="/v2/balance?symbol=EUR",
        body=None,
        keys={KEY.key: KEY},
        arrival_ms=ts,
    )
    assert found == KEY
    assert authenticate({}, method="GET", raw_path="/v2/time", body=None, keys={}, arrival_ms=ts) is None
    assert signature != sign(KEY.secret, ts, "GET", "/v2/balance")  # the query is part of it


def test_ban_message_parses_the_way_the_sdk_parses_it() -> None:
    message = ban_message(1_700_000_060_000)
    assert int(message.split(" at ")[1].split(".")[0]) == 1_700_000_060_000  # SDK updateRateLimit


def test_rate_limiter_bans_until_the_end_of_the_next_minute() -> None:
    limiter = RateLimiter()
    minute = 1_700_000_040_000  # a minute boundary
    assert minute % 60_000 == 0
    for _ in range(40):
        budget = limiter.charge("key:a", weight("GET", "/ticker/24h", has_market=False), minute + 15_000, by_key=True)
    assert budget.remaining == 0
    assert budget.reset_at_ms == minute + 60_000
    with pytest.raises(SimError) as caught:
        limiter.charge("key:a", 1, minute + 15_001, by_key=True)
    assert caught.value.code == 105
    assert caught.value.http_status == 429
    assert str(minute + 120_000) in caught.value.message  # docs: over at 12:00:15 → free at 12:02:00
    with pytest.raises(SimError):
        limiter.charge("key:a", 1, minute + 119_999, by_key=True)
    assert limiter.charge("key:a", 1, minute + 120_000, by_key=True).remaining == 999


def test_ip_ban_lasts_fifteen_minutes_past_the_current_one() -> None:
    limiter = RateLimiter()
    minute = 1_700_000_040_000
    limiter.exhaust("ip:127.0.0.1", minute)
    with pytest.raises(SimError) as caught:
        limiter.charge("ip:127.0.0.1", 1, minute + 1, by_key=False)
    assert str(minute + 16 * 60_000) in caught.value.message


@pytest.mark.parametrize(
    ("code", "status"), [(309, 403), (310, 403), (240, 404), (105, 429), (101, 500), (109, 503), (107, 503), (216, 400)]
)
def test_http_status_per_error_code(code: int, status: int) -> None:
    assert http_status_for(code) == status
