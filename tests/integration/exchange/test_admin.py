"""The admin API other tests rely on: reset, counters, balances, loopback-only JSON."""

from __future__ import annotations

import json
import socket
import uuid
from decimal import Decimal

import requests

from sim.bitvavo import BitvavoSimulator, SimulatorAdmin
from tests.integration.exchange.conftest import TRADE
from tests.support.trade_client import FullTradeClient


def test_reset_restores_the_configured_state(
    sim: BitvavoSimulator, admin: SimulatorAdmin, trade_client: FullTradeClient
) -> None:
    admin.set_balance("EUR", "100")
    trade_client.place_order("BTC-EUR", "buy", "market", uuid.uuid4(), amount_quote=Decimal("10"))
    admin.halt_market("ETH-EUR")
    admin.drop_next_order()
    admin.exhaust_rate_limit(key=TRADE.key)
    assert admin.order_count(key=TRADE.key) == 1 and admin.available("EUR") == Decimal("90")
    admin.reset()
    assert admin.order_count() == 0 and admin.post_order_count() == 0
    assert admin.faults() == [] and admin.rate_limit_usage() == {}
    assert admin.balances() == {"EUR": {"available": Decimal("10000"), "inOrder": Decimal("0")}}
    assert requests.get(sim.base_url + "/markets?market=ETH-EUR", timeout=5).json()["status"] == "trading"


def test_unknown_admin_paths_and_bad_input_answer_json(sim: BitvavoSimulator) -> None:
    missing = requests.get(sim.admin_url + "/nope", timeout=5)
    assert missing.status_code == 404 and "error" in missing.json()
    bad = requests.post(sim.admin_url + "/faults", json={"kind": "explode"}, timeout=5)
    assert bad.status_code == 400 and "kind" in bad.json()["error"]


def test_malformed_http_still_gets_json(sim: BitvavoSimulator) -> None:
    answer = requests.request("PATCH", sim.base_url + "/order", timeout=5)
    assert answer.status_code == 400 and answer.json()["errorCode"] == 110
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as raw:
        raw.sendall(b"NOT A REQUEST LINE AT ALL\r\n\r\n")
        reply = raw.recv(4096).decode()
    # a line that is not HTTP/1.x gets an HTTP/0.9-style answer (no headers), but still JSON
    assert json.loads(reply[reply.index("{") :])["errorCode"] == 110
