"""``python -m sim.bitvavo`` prints its base URL first and serves the SDK and the admin API."""

from __future__ import annotations

import subprocess
import sys

from python_bitvavo_api.bitvavo import Bitvavo

from sim.bitvavo import DEFAULT_VIEW_KEY, DEFAULT_VIEW_SECRET, SimulatorAdmin


def test_subprocess_prints_its_url_and_serves() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sim.bitvavo", "--port", "0", "--seed", "42", "--balance", "main:BTC:0.5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v2")
        admin = SimulatorAdmin(url)
        assert admin.health()["baseUrl"] == url
        sdk = Bitvavo({"restUrl": url, "apikey": DEFAULT_VIEW_KEY, "apisecret": DEFAULT_VIEW_SECRET, "timeout": 5})
        balances = {b["symbol"]: b["available"] for b in sdk.balance({})}
        assert balances == {"EUR": "10000", "BTC": "0.5"}
        admin.close()
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
