"""``SimulatorAdmin``: a small client of the simulator's admin API, for tests in any process.

It speaks plain JSON over ``requests`` to ``/_admin`` on the simulator's port and never touches
the ``/v2`` API, so nothing it does is counted, rate-limited or faulted (except
``drop_before_read``, which cannot tell connections apart).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import requests

from sim.bitvavo.errors import http_status_for


class SimulatorAdmin:
    """Drive a running simulator. ``base_url`` is what it printed (``http://127.0.0.1:PORT/v2``)."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        parts = urlsplit(base_url)
        self.url = f"{parts.scheme}://{parts.netloc}/_admin"
        self.timeout = timeout
        self._session = requests.Session()

    def close(self) -> None:
        self._session.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        try:
            response = self._session.request(
                method, self.url + path, json=body, params=query or None, timeout=self.timeout
            )
        except requests.exceptions.ConnectionError:
            # The kept-alive connection was closed under us by a fault of the simulator's own
            # (refuse_connections closes every connection with the listener): a control call that
            # got no answer was not processed, so it is sent once more on a new connection.
            self._session.close()
            response = self._session.request(
                method, self.url + path, json=body, params=query or None, timeout=self.timeout
            )
        if response.status_code != 200:
            raise RuntimeError(f"admin {method} {path}: {response.status_code} {response.text}")
        return response.json()

    # -- inspection ----------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/health")
        return result

    def orders(
        self, *, key: str | None = None, account: str | None = None, market: str | None = None
    ) -> list[dict[str, Any]]:
        """Every order the exchange holds (open and closed, those whose answer a fault ate included),
        as ``{"key", "account", "fault", "signedAt", "order": <order object>}``, oldest first
        (``signedAt``: the placement's signed timestamp)."""
        result: list[dict[str, Any]] = self._call("GET", "/orders", key=key, account=account, market=market)["orders"]
        return result

    def order_count(self, *, key: str | None = None, account: str | None = None, market: str | None = None) -> int:
        return len(self.orders(key=key, account=account, market=market))

    def stats(self) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = self._call("GET", "/stats")
        return result

    def post_order_count(self, key: str | None = None) -> int:
        """How many ``POST /order`` requests arrived (with ``key``, or in all), whatever their fate."""
        by_key = self.stats()["postOrderByKey"]
        return sum(by_key.values()) if key is None else by_key.get(key, 0)

    def request_count(self, path: str, method: str = "GET") -> int:
        """Requests that arrived for ``path``: an endpoint template (``/ticker/price``,
        ``/{market}/candles``) or a concrete path after /v2 (``/BTC-EUR/candles``)."""
        stats = self.stats()
        name = f"{method} {path}"
        return stats["requests"].get(name, 0) or stats["paths"].get(name, 0)

    def connection_count(self) -> int:
        """TCP connections accepted (the admin client's own included): keep-alive reuses one."""
        return int(self.stats()["connections"]["accepted"])

    def balances(self, account: str = "main") -> dict[str, dict[str, Decimal]]:
        raw = self._call("GET", "/balances", account=account)["balances"]
        return {s: {k: Decimal(v) for k, v in h.items()} for s, h in raw.items()}

    def available(self, symbol: str, account: str = "main") -> Decimal:
        holding = self.balances(account).get(symbol)
        return Decimal(0) if holding is None else holding["available"]

    def prices(self) -> dict[str, Decimal]:
        return {m: Decimal(p) for m, p in self._call("GET", "/prices")["prices"].items()}

    def now_ms(self) -> int:
        return int(self._call("GET", "/clock")["now"])

    def faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/faults")["faults"]
        return result

    def rate_limit_usage(self) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = self._call("GET", "/ratelimit")["usage"]
        return result

    # -- state changes -------------------------------------------------------------------------
    def set_balance(self, symbol: str, available: Decimal | str, account: str = "main") -> None:
        self._call("POST", "/balances", {"account": account, "symbol": symbol, "available": str(available)})

    def set_price(self, market: str, price: Decimal | str) -> None:
        """Pin the market's price now; the walk continues from it (resting orders may fill)."""
        self._call("POST", "/prices", {"market": market, "price": str(price)})

    def set_market_status(self, market: str, status: str) -> None:
        self._call("POST", "/markets/status", {"market": market, "status": status})

    def halt_market(self, market: str) -> None:
        self.set_market_status(market, "halted")

    def resume_market(self, market: str) -> None:
        self.set_market_status(market, "trading")

    def advance_clock(self, ms: int) -> int:
        """Move the exchange clock forward (rate-limit minutes, bans, prices, resting orders)."""
        return int(self._call("POST", "/clock/advance", {"ms": ms})["now"])

    def advance_to_next_minute(self, extra_ms: int = 0) -> int:
        """Jump to the start of the next minute: a fresh rate-limit window with ~60 s of room."""
        return int(self._call("POST", "/clock/advance", {"toNextMinute": True, "ms": extra_ms})["now"])

    def skew_clock(self, ms: int) -> int:
        """Put the exchange's clock ``ms`` further ahead of real time: ``GET /time`` and the access
        window move too, so a client signing with its own clock is refused once off by more than
        its window. Returns the exchange's new time."""
        return int(self._call("POST", "/clock/skew", {"ms": ms})["now"])

    def switches(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/switches")["switches"]
        return result

    def set_switches(self, **changes: Any) -> dict[str, Any]:
        """Change switches (``sim.bitvavo.switches.Switches`` field names), e.g.
        ``set_switches(closed_orders_by_client_order_id=False, history_range_limit_ms=None)``."""
        result: dict[str, Any] = self._call("POST", "/switches", changes)["switches"]
        return result

    def add_foreign_history(
        self,
        market: str,
        *,
        count: int = 1,
        order_type: str = "trailingStop",
        status: str = "pendingNew",
        account: str = "main",
        age_ms: int = 0,
        client_order_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Rows another user of the shared ``account`` left in ``market``'s ``/orders`` and
        ``/trades``: an unknown order type and status, shapes no strict parser takes, created
        ``age_ms`` ago. With ``client_order_id`` they carry that id (a row of ours nobody can
        parse). Returns them."""
        body: dict[str, Any] = {"market": market, "count": count, "orderType": order_type, "status": status}
        body.update(account=account, ageMs=age_ms, clientOrderId=client_order_id)
        result: list[dict[str, Any]] = self._call("POST", "/history/foreign", body)["orders"]
        return result

    def settle_fees(self, *, market: str | None = None, client_order_id: str | None = None) -> int:
        """Settle unsettled fills (deferred fee settlement); returns how many were settled."""
        return int(self._call("POST", "/fees/settle", {"market": market, "clientOrderId": client_order_id})["settled"])

    def add_key(
        self, key: str, secret: str, account: str = "main", permissions: tuple[str, ...] = ("view", "trade")
    ) -> None:
        self._call(
            "POST", "/keys", {"key": key, "secret": secret, "account": account, "permissions": list(permissions)}
        )

    def exhaust_rate_limit(self, *, key: str | None = None, ip: str | None = None) -> None:
        """Use up the key's (or IP's) weight for this minute: its next call gets 105 and a ban."""
        self._call("POST", "/ratelimit/exhaust", {"key": key, "ip": ip})

    def fresh_rate_limits(self) -> None:
        """Every identity's weight back to zero and every ban lifted, without moving the clock
        (``advance_to_next_minute`` moves ``GET /time``, which clients signing with exchange time
        then have to re-measure)."""
        self._call("POST", "/ratelimit/fresh")

    def refuse_connections(self, seconds: float) -> None:
        """Close the listening socket for ``seconds`` (TCP "connection refused"; admin included)."""
        self._call("POST", "/refuse_connections", {"seconds": seconds})

    def reset(self) -> None:
        self._call("POST", "/reset")

    # -- faults --------------------------------------------------------------------------------
    def add_fault(self, kind: str, **spec: Any) -> dict[str, Any]:
        """Arm a fault (see ``sim.bitvavo.faults``); returns it with its id."""
        result: dict[str, Any] = self._call("POST", "/faults", {"kind": kind, **spec})["fault"]
        return result

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def drop_next_order(self, *, count: int = 1, market: str | None = None, place: bool = True) -> dict[str, Any]:
        """The next order placements are handled (``place``) and then get no answer: the
        connection closes."""
        return self.add_fault("drop", count=count, market=market, process=place)

    def hang_next_order(
        self, seconds: float = 30.0, *, count: int = 1, market: str | None = None, place: bool = True
    ) -> dict[str, Any]:
        """The next order placements are handled (``place``) and then never answered: the server
        waits until the client times out (or ``seconds``)."""
        return self.add_fault("hang", count=count, market=market, process=place, seconds=seconds)

    def fail_next_order(
        self,
        error_code: int = 109,
        *,
        place: bool = True,
        count: int = 1,
        market: str | None = None,
        http_status: int | None = None,
        message: str | None = None,
    ) -> dict[str, Any]:
        """The next order placements get ``error_code`` (101 → 500, 107/109 → 503 unless given),
        with (``place``) or without the order having been placed."""
        return self.add_fault(
            "error",
            count=count,
            market=market,
            process=place,
            error_code=error_code,
            http_status=http_status or http_status_for(error_code),
            message=message,
        )

    def garble_next_order(
        self, *, http_status: int = 502, place: bool = True, count: int = 1, market: str | None = None
    ) -> dict[str, Any]:
        """The next order placements are answered with an HTML error page instead of JSON."""
        return self.add_fault("garbage", count=count, market=market, process=place, http_status=http_status)

    def fail_next_request(
        self, path: str, error_code: int = 107, *, method: str = "GET", count: int = 1, process: bool = False
    ) -> dict[str, Any]:
        """The next requests to ``path`` (template or concrete) get ``error_code``."""
        return self.add_fault(
            "error",
            path=path,
            method=method,
            count=count,
            process=process,
            error_code=error_code,
            http_status=http_status_for(error_code),
        )

    def drop_next_connections(self, count: int = 1) -> dict[str, Any]:
        """Close the next ``count`` connections on accept, before reading the request."""
        return self.add_fault("drop_before_read", count=count, method=None, path=None)

    def stall_next_request(
        self, seconds: float, *, path: str | None = "/order", method: str | None = "POST", count: int = 1
    ) -> dict[str, Any]:
        """The next matching requests arrive ``seconds`` after they were signed (judged so at
        once, nobody waits): longer than their access window, they are refused with 304."""
        return self.add_fault("stall", seconds=seconds, path=path, method=method, count=count, process=True)

    def add_latency(
        self, seconds: float, *, path: str | None = None, method: str | None = None, count: int | None = None
    ) -> dict[str, Any]:
        return self.add_fault("latency", seconds=seconds, path=path, method=method, count=count)
