"""Authentication exactly as the fact sheet says, seen through the SDK and raw HTTP."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
from python_bitvavo_api.bitvavo import createSignature

from shared.exchange.errors import AuthenticationError
from shared.exchange.sdk import ApiCredentials, ExchangeSettings
from sim.bitvavo import BitvavoSimulator, SimulatorAdmin
from tests.integration.exchange.conftest import OPERATOR_ID, TRADE, VIEW, sdk
from tests.support.trade_client import FullTradeClient


def _signed_headers(
    credentials: ApiCredentials, method: str, url_path: str, body: dict[str, Any] | None, ts: int
) -> dict[str, str]:
    """Headers as the SDK builds them (its own createSignature), for requests we tamper with."""
    return {
        "bitvavo-access-key": credentials.key,
        "bitvavo-access-signature": createSignature(ts, method, url_path, body, credentials.secret),
        "bitvavo-access-timestamp": str(ts),
        "bitvavo-access-window": "10000",
    }


def _now() -> int:
    return int(time.time() * 1000)


def test_the_sdk_is_accepted_on_private_and_public_endpoints(sim: BitvavoSimulator, admin: SimulatorAdmin) -> None:
    client = sdk(sim, TRADE)
    assert client.balance({}) == [{"symbol": "EUR", "available": "10000", "inOrder": "0"}]
    assert client.tickerPrice({"market": "BTC-EUR"})["market"] == "BTC-EUR"
    # the signed public call was charged to the key, not to the IP
    usage = admin.rate_limit_usage()
    assert usage[f"key:{TRADE.key}"]["used"] == 5 + 1
    assert "ip:127.0.0.1" not in usage


def test_tampered_body_is_refused_with_309(sim: BitvavoSimulator, admin: SimulatorAdmin) -> None:
    signed = {"operatorId": 1, "amountQuote": "10", "market": "BTC-EUR", "side": "buy", "orderType": "market"}
    sent = {**signed, "amountQuote": "9000"}
    headers = _signed_headers(TRADE, "POST", "/order", signed, _now())
    answer = requests.post(sim.base_url + "/order", json=sent, headers=headers, timeout=5)
    assert answer.status_code == 403
    assert answer.json() == {"errorCode": 309, "error": "The signature is invalid."}
    assert admin.order_count() == 0
    # the same headers with the body they signed are accepted (with the spaces requests puts in)
    answer = requests.post(sim.base_url + "/order", json=signed, headers=headers, timeout=5)
    assert answer.status_code == 200, answer.text
    assert admin.order_count() == 1


def test_signature_follows_the_received_key_order(sim: BitvavoSimulator) -> None:
    body = {"market": "BTC-EUR", "side": "buy", "orderType": "market", "amountQuote": "10", "operatorId": 1}
    headers = _signed_headers(TRADE, "POST", "/order", body, _now())
    reordered = json.dumps(dict(reversed(list(body.items()))))
    answer = requests.post(
        sim.base_url + "/order", data=reordered, headers={**headers, "Content-Type": "application/json"}, timeout=5
    )
    assert answer.json()["errorCode"] == 309


def test_the_raw_query_string_is_signed(sim: BitvavoSimulator) -> None:
    ts = _now()
    headers = _signed_headers(TRADE, "GET", "/balance?symbol=EUR", None, ts)
    assert requests.get(sim.base_url + "/balance?symbol=EUR", headers=headers, timeout=5).status_code == 200
    answer = requests.get(sim.base_url + "/balance?symbol=BTC", headers=headers, timeout=5)
    assert answer.json()["errorCode"] == 309


def test_header_names_are_case_insensitive(sim: BitvavoSimulator) -> None:
    headers = _signed_headers(TRADE, "GET", "/balance", None, _now())
    shouted = {name.upper(): value for name, value in headers.items()}
    title = {name.title(): value for name, value in headers.items()}
    for variant in (shouted, title):
        answer = requests.get(sim.base_url + "/balance", headers=variant, timeout=5)
        assert answer.status_code == 200, answer.text


def test_stale_timestamp_gets_304(sim: BitvavoSimulator) -> None:
    headers = _signed_headers(TRADE, "GET", "/balance", None, _now() - 11_000)
    answer = requests.get(sim.base_url + "/balance", headers=headers, timeout=5)
    assert (answer.status_code, answer.json()["errorCode"]) == (403, 304)
    # within a wider window the same age is fine
    wide = {**_signed_headers(TRADE, "GET", "/balance", None, _now() - 11_000), "bitvavo-access-window": "20000"}
    assert requests.get(sim.base_url + "/balance", headers=wide, timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("credentials", "code"),
    [
        (ApiCredentials(TRADE.key, "wrong-secret"), 309),
        (ApiCredentials("f" * 64, TRADE.secret), 305),
        (ApiCredentials("short", TRADE.secret), 301),
    ],
)
def test_bad_credentials_through_the_sdk_and_our_client(
    sim: BitvavoSimulator, settings: ExchangeSettings, credentials: ApiCredentials, code: int
) -> None:
    answer = sdk(sim, credentials).balance({})
    assert answer["errorCode"] == code
    client = FullTradeClient(credentials, operator_id=OPERATOR_ID, settings=settings)
    with pytest.raises(AuthenticationError) as caught:
        client.balance("EUR")
    assert caught.value.code == code


def test_private_endpoint_without_key_is_300_and_errors_are_json(sim: BitvavoSimulator) -> None:
    answer = requests.get(sim.base_url + "/balance", timeout=5)
    assert answer.status_code == 403
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["errorCode"] == 300
    unknown = requests.get(sim.base_url + "/nothing/here/at/all", timeout=5)
    assert (unknown.status_code, unknown.json()["errorCode"]) == (400, 110)


def test_bad_window_and_malformed_signature(sim: BitvavoSimulator) -> None:
    headers = {**_signed_headers(VIEW, "GET", "/balance", None, _now()), "bitvavo-access-window": "60001"}
    assert requests.get(sim.base_url + "/balance", headers=headers, timeout=5).json()["errorCode"] == 303
    headers = {**_signed_headers(VIEW, "GET", "/balance", None, _now()), "bitvavo-access-signature": "abc"}
    assert requests.get(sim.base_url + "/balance", headers=headers, timeout=5).json()["errorCode"] == 308
