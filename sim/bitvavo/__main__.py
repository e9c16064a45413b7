"""``python -m sim.bitvavo``: run the simulator until SIGINT/SIGTERM.

The first line on stdout is the base URL (``http://127.0.0.1:PORT/v2``), flushed, so a parent
process can read it; logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

from sim.bitvavo.accounts import default_accounts, default_keys
from sim.bitvavo.server import BitvavoSimulator
from sim.bitvavo.signing import ApiKey
from sim.bitvavo.switches import DAY_MS, Switches


def _parse_key(text: str) -> ApiKey:
    key, secret, account, permissions = text.split(":", 3)
    return ApiKey(key, secret, account, frozenset(p for p in permissions.split(",") if p))


def _parse_balance(text: str) -> tuple[str, str, Decimal]:
    account, symbol, amount = text.split(":", 2)
    return account, symbol, Decimal(amount)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sim.bitvavo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--step-ms", type=int, default=60_000, help="how often prices move")
    parser.add_argument("--history-steps", type=int, default=7 * 24 * 60, help="generated price history")
    parser.add_argument("--config", type=Path, help='JSON: {"keys": [...], "accounts": {...}}')
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="KEY:SECRET:ACCOUNT:PERMS",
        help="an extra API key; PERMS is a comma list of view,trade (repeatable)",
    )
    parser.add_argument("--balance", action="append", default=[], metavar="ACCOUNT:SYMBOL:AMOUNT", help="repeatable")
    parser.add_argument("--no-default-keys", action="store_true", help="drop the built-in trade and view keys")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--skew-ms", type=int, default=0, help="the exchange clock runs this far ahead of the host")
    parser.add_argument(
        "--history-range-limit-ms", type=int, default=DAY_MS, help="longest start..end of /orders and /trades; 0: none"
    )
    parser.add_argument(
        "--closed-orders-by-client-order-id",
        choices=("on", "off"),
        default="on",
        help="whether GET /order?clientOrderId= finds an order that is no longer active",
    )
    parser.add_argument("--fee-settlement", choices=("immediate", "deferred"), default="immediate")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    keys: list[ApiKey] = [] if args.no_default_keys else list(default_keys())
    accounts: dict[str, dict[str, Decimal]] = default_accounts()
    if args.config is not None:
        config: dict[str, Any] = json.loads(args.config.read_text())
        for spec in config.get("keys", []):
            keys.append(
                ApiKey(
                    spec["key"],
                    spec["secret"],
                    spec.get("account", "main"),
                    frozenset(spec.get("permissions", ["view", "trade"])),
                )
            )
        for account, balances in config.get("accounts", {}).items():
            accounts[account] = {symbol: Decimal(str(amount)) for symbol, amount in balances.items()}
    keys.extend(_parse_key(text) for text in args.key)
    for account, symbol, amount in (_parse_balance(text) for text in args.balance):
        accounts.setdefault(account, {})[symbol] = amount
    sim = BitvavoSimulator(
        seed=args.seed,
        keys=keys,
        accounts=accounts,
        host=args.host,
        port=args.port,
        step_ms=args.step_ms,
        history_steps=args.history_steps,
        skew_ms=args.skew_ms,
        switches=Switches(
            history_range_limit_ms=args.history_range_limit_ms or None,
            closed_orders_by_client_order_id=args.closed_orders_by_client_order_id == "on",
            fee_settlement=args.fee_settlement,
        ),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(sim.start(), flush=True)  # noqa: T201 - the parent process reads the URL from stdout
    stop.wait()
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
