"""The HTTP face of the simulator: ``BitvavoSimulator`` serves REST v2 under ``/v2`` and the admin
API under ``/_admin`` on one 127.0.0.1 port.

For every ``/v2`` request, in order: count it; take armed faults; authenticate (signature over the
raw path and the compact re-serialised body; the access window judged against the exchange's
clock at arrival, a ``stall`` fault making it arrive later); charge rate-limit weight to the key, or to the IP
without one; call the exchange engine; answer JSON with the three ``bitvavo-ratelimit-*`` headers.
Errors are JSON too, with the fact sheet's HTTP statuses. Admin calls skip auth, weights, faults
and counting, and are refused unless they come from loopback.

Connections are HTTP/1.1 keep-alive, as Bitvavo's are: a client may send many requests over one
connection. Closing the listener (``pause_listening``, ``stop``) also closes every open connection,
so a pooled connection cannot outlive the exchange it was talking to; ``drop_before_read`` is
checked before each request a connection carries (once its first byte has arrived, unread).
"""

from __future__ import annotations

import json
import logging
import re
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sim.bitvavo.accounts import default_accounts, default_keys
from sim.bitvavo.clock import SimClock
from sim.bitvavo.engine import Exchange
from sim.bitvavo.errors import SimError
from sim.bitvavo.faults import Fault, FaultBook
from sim.bitvavo.markets import DEFAULT_MARKETS, MARKET_STATUSES, MarketSpec
from sim.bitvavo.ratelimit import RateLimiter, weight
from sim.bitvavo.signing import ApiKey, authenticate
from sim.bitvavo.switches import Switches

logger = logging.getLogger(__name__)

PREFIX = "/v2"
ADMIN_PREFIX = "/_admin"
_MARKET_RE = re.compile(r"^/([A-Z0-9]+-[A-Z0-9]+)/(candles|book|trades)$")
_PRIVATE = frozenset({"/order", "/orders", "/ordersOpen", "/trades", "/balance", "/account", "/account/fees"})
_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/time"),
        ("GET", "/markets"),
        ("GET", "/assets"),
        ("GET", "/ticker/price"),
        ("GET", "/ticker/book"),
        ("GET", "/ticker/24h"),
        ("GET", "/{market}/candles"),
        ("GET", "/{market}/book"),
        ("GET", "/{market}/trades"),
        ("GET", "/order"),
        ("POST", "/order"),
        ("DELETE", "/order"),
        ("GET", "/orders"),
        ("DELETE", "/orders"),
        ("PUT", "/order"),
        ("GET", "/ordersOpen"),
        ("GET", "/trades"),
        ("GET", "/balance"),
        ("GET", "/account"),
        ("GET", "/account/fees"),
    }
)


_Query = dict[str, str]
_Data = dict[str, Any]


class _Answer(Exception):
    """Internal: an admin or REST answer ready to send."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _template(path: str) -> tuple[str, str | None]:
    """The endpoint template of a path after /v2, and the market in it."""
    match = _MARKET_RE.match(path)
    if match:
        return f"/{{market}}/{match.group(2)}", match.group(1)
    return path, None


@dataclass(frozen=True)
class RestRequest:
    """One parsed ``/v2`` request."""

    method: str
    template: str  # endpoint template, e.g. "/{market}/candles"
    path: str  # the path after /v2
    path_market: str | None
    query: dict[str, str]
    body: Any
    body_ok: bool
    stall_ms: int = 0  # how much later than now the request is judged to arrive (``stall`` fault)


class RequestLog:
    """Counts of requests received, by endpoint template, by raw path and POST /order by key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_endpoint: Counter[str] = Counter()
        self.by_path: Counter[str] = Counter()
        self.post_order_by_key: Counter[str] = Counter()
        self.connections = 0

    def record(self, method: str, template: str, path: str, key: str) -> None:
        with self._lock:
            self.by_endpoint[f"{method} {template}"] += 1
            self.by_path[f"{method} {path}"] += 1
            if method == "POST" and template == "/order":
                self.post_order_by_key[key] += 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {
                "requests": dict(self.by_endpoint),
                "paths": dict(self.by_path),
                "postOrderByKey": dict(self.post_order_by_key),
                "connections": {"accepted": self.connections},
            }

    def clear(self) -> None:
        with self._lock:
            self.by_endpoint.clear()
            self.by_path.clear()
            self.post_order_by_key.clear()
            self.connections = 0

    def connection_opened(self) -> None:
        with self._lock:
            self.connections += 1


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sim: BitvavoSimulator) -> None:
        self.sim = sim
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def opened(self, connection: socket.socket) -> None:
        self.sim.requests.connection_opened()
        with self._connections_lock:
            self._connections.add(connection)

    def closed(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """End every open (keep-alive) connection: the client sees it closed."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "BitvavoSimulator/1.0"

    def setup(self) -> None:
        super().setup()
        self.server.opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.closed(self.connection)

    def handle_one_request(self) -> None:
        # wait for the next request's first byte without reading it: drop_before_read applies to
        # every request a keep-alive connection carries, the first one included
        try:
            select.select([self.connection], [], [])
            if not self.connection.recv(1, socket.MSG_PEEK):
                self.close_connection = True
                return
        except OSError:
            self.close_connection = True
            return
        if self.server.sim.faults.take_connection_drop():
            self._drop()
            return
        super().handle_one_request()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (malformed request line, …) in Bitvavo's JSON shape too."""
        self.close_connection = True
        self._send(code, {"errorCode": 110, "error": message or "Invalid request."})

    # -- plumbing ------------------------------------------------------------------------------
    def _send(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _hang(self, seconds: float) -> None:
        """Answer nothing until ``seconds`` pass or the client closes its end."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            if readable:
                try:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        break
                except OSError:
                    break
        self._drop()

    def _read_body(self) -> tuple[Any, bool]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        if not raw.strip():
            return None, True
        try:
            return json.loads(raw), True
        except ValueError:
            return None, False

    def _serve(self, method: str) -> None:
        sim = self.server.sim
        split = urlsplit(self.path)
        try:
            if split.path.startswith(ADMIN_PREFIX):
                host = self.client_address[0]
                if not (host.startswith("127.") or host == "::1"):
                    raise _Answer(403, {"error": "the admin API only answers loopback"})
                body, ok = self._read_body()
                if not ok:
                    raise _Answer(400, {"error": "invalid JSON"})
                raise _Answer(200, sim.admin(method, split.path[len(ADMIN_PREFIX) :], split.query, body))
            self._serve_rest(method, split.path, split.query)
        except _Answer as answer:
            self._send(answer.status, answer.body)
        except (ValueError, KeyError, TypeError) as exc:
            self._send(400, {"error": str(exc)})
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _serve_rest(self, method: str, path: str, query_string: str) -> None:
        sim = self.server.sim
        if not path.startswith(PREFIX + "/"):
            self._send(404, SimError(110).body())
            return
        sub = path[len(PREFIX) :]
        template, path_market = _template(sub)
        query = dict(parse_qsl(query_string, keep_blank_values=True))
        body, body_ok = self._read_body()
        presented_key = self.headers.get("bitvavo-access-key") or ""
        sim.requests.record(method, template, sub, presented_key)
        market = path_market or query.get("market")
        if market is None and isinstance(body, dict) and isinstance(body.get("market"), str):
            market = body["market"]
        latency, stall_ms, fault = sim.faults.take(method, template, sub, market, presented_key or None)
        if latency > 0:
            time.sleep(latency)
        if fault is not None and not fault.process:
            self._apply_fault(fault, None)
            return
        request = RestRequest(method, template, sub, path_market, query, body, body_ok, stall_ms)
        status, answer, headers, placed = self._process(request)
        if fault is None:
            self._send(status, answer, headers)
            return
        self._apply_fault(fault, placed, headers)

    def _apply_fault(self, fault: Fault, placed: Any, headers: Mapping[str, str] | None = None) -> None:
        sim = self.server.sim
        if placed is not None:
            sim.exchange.tag_fault(placed, fault.kind)
        if fault.kind == "error":
            error = SimError(fault.error_code, fault.message)
            self._send(fault.http_status, error.body(), headers)
        elif fault.kind == "garbage":
            page = f"<html><body><h1>{fault.http_status}</h1>upstream error</body></html>".encode()
            self.send_response(fault.http_status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
        elif fault.kind == "hang":
            self._hang(fault.seconds)
        else:
            self._drop()

    def _process(self, request: RestRequest) -> tuple[int, Any, dict[str, str], Any]:
        """(status, body, headers, placed order or None) of the normal answer."""
        sim = self.server.sim
        headers: dict[str, str] = {}
        method, template, body = request.method, request.template, request.body
        try:
            if (method, template) not in _ROUTES:
                raise SimError(110)
            if not request.body_ok:
                raise SimError(102)
            key = authenticate(
                {name.lower(): value for name, value in self.headers.items()},
                method=method,
                raw_path=self.path,
                body=body,
                keys=sim.exchange.keys,
                arrival_ms=sim.clock.window_ms() + request.stall_ms,
                latest_ms=sim.clock.now_ms() + request.stall_ms,
            )
            if key is None and template in _PRIVATE:
                raise SimError(300)
            identity = f"key:{key.key}" if key is not None else f"ip:{self.client_address[0]}"
            now = sim.clock.now_ms()
            try:
                budget = sim.limiter.charge(
                    identity,
                    weight(method, template, "market" in request.query),
                    now,
                    by_key=key is not None,
                )
            except SimError:
                headers = sim.limiter.peek(identity, now).headers()
                raise
            headers = budget.headers()
            signed = self.headers.get("bitvavo-access-timestamp")
            signed_ms = int(signed.strip()) if key is not None and signed and signed.strip().isdigit() else None
            result, placed = sim.route(request, key, signed_ms)
            return 200, result, headers, placed
        except SimError as error:
            return error.http_status, error.body(), headers, None


class BitvavoSimulator:
    """A Bitvavo REST v2 exchange on a local port. ``start()`` returns the base URL to pass to the
    SDK as ``restUrl`` (``http://127.0.0.1:PORT/v2``); usable as a context manager."""

    def __init__(
        self,
        *,
        seed: int = 42,
        markets: Iterable[MarketSpec] = DEFAULT_MARKETS,
        keys: Iterable[ApiKey] | None = None,
        accounts: Mapping[str, Mapping[str, Decimal]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        step_ms: int = 60_000,
        history_steps: int = 7 * 24 * 60,
        clock: SimClock | None = None,
        switches: Switches | None = None,
        skew_ms: int = 0,
    ) -> None:
        """``switches``: the switchable constraints (``sim.bitvavo.switches``; defaults: strict).
        ``skew_ms``: how far the exchange's clock runs ahead of the host's (``SimClock``)."""
        self.clock = clock or SimClock(skew_ms=skew_ms)
        if clock is not None and skew_ms:
            self.clock.add_skew(skew_ms)
        self.exchange = Exchange(
            seed=seed,
            markets=markets,
            keys=default_keys() if keys is None else keys,
            accounts=default_accounts() if accounts is None else accounts,
            clock=self.clock,
            step_ms=step_ms,
            history_steps=history_steps,
            switches=switches,
        )
        self.limiter = RateLimiter()
        self.faults = FaultBook()
        self.requests = RequestLog()
        self._host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._serving_lock = threading.Lock()
        self._stopped = False

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> str:
        with self._serving_lock:
            self._stopped = False
            if self._server is None:
                self._listen()
        return self.base_url

    def _listen(self) -> None:
        self._server = _Server((self._host, self._port), self)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="bitvavo-sim", daemon=True
        )
        self._thread.start()

    def _close_listener(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_connections()
            self._server = None

    def stop(self) -> None:
        with self._serving_lock:
            self._stopped = True
            self._close_listener()

    def pause_listening(self, seconds: float) -> None:
        """Close the listening socket for ``seconds`` (clients get "connection refused"), then
        listen on the same port again. The admin API is unreachable meanwhile."""

        def cycle() -> None:
            with self._serving_lock:
                self._close_listener()
            time.sleep(seconds)
            with self._serving_lock:
                if self._server is None and not self._stopped:
                    self._listen()

        threading.Thread(target=cycle, name="bitvavo-sim-pause", daemon=True).start()

    def __enter__(self) -> BitvavoSimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self._port}{PREFIX}"

    @property
    def admin_url(self) -> str:
        return f"http://{self._host}:{self._port}{ADMIN_PREFIX}"

    def reset(self) -> None:
        """Everything back to the start: balances, orders, prices, limits, faults, counters."""
        self.exchange.reset()
        self.limiter.reset()
        self.faults.clear()
        self.requests.clear()

    # -- REST routing --------------------------------------------------------------------------
    def route(self, request: RestRequest, key: ApiKey | None, signed_ms: int | None = None) -> tuple[Any, Any]:
        """Dispatch one authenticated, charged request: (answer, placed order or None).
        ``signed_ms`` is the request's signed timestamp (kept with a placed order for the admin API)."""
        ex = self.exchange
        method, template, query, path_market = request.method, request.template, request.query, request.path_market
        public: dict[str, Callable[[], Any]] = {
            "/time": ex.time,
            "/markets": lambda: ex.markets(query),
            "/assets": lambda: ex.assets(query),
            "/ticker/price": lambda: ex.ticker_price(query),
            "/ticker/book": lambda: ex.ticker_book(query),
            "/ticker/24h": lambda: ex.ticker_24h(query),
            "/{market}/candles": lambda: ex.candles(path_market or "", query),
            "/{market}/book": lambda: ex.book(path_market or "", query),
            "/{market}/trades": lambda: ex.public_trades(path_market or "", query),
        }
        if template in public:
            ex.sync()
            return public[template](), None
        assert key is not None
        if method == "POST" and template == "/order":
            order, answer = ex.place_order(key, request.body, signed_ms=signed_ms)
            return answer, order
        private: dict[tuple[str, str], Callable[[], Any]] = {
            ("GET", "/order"): lambda: ex.get_order(key, query),
            ("DELETE", "/order"): lambda: ex.cancel_order(key, query),
            ("GET", "/orders"): lambda: ex.list_orders(key, query),
            ("DELETE", "/orders"): lambda: ex.cancel_orders(key, query),
            ("GET", "/ordersOpen"): lambda: ex.open_orders(key, query),
            ("GET", "/trades"): lambda: ex.trades(key, query),
            ("GET", "/balance"): lambda: ex.balance(key, query),
            ("GET", "/account"): lambda: ex.account(key),
            ("GET", "/account/fees"): lambda: ex.fees(key, query),
            ("PUT", "/order"): lambda: ex.update_order(key, request.body),
        }
        return private[(method, template)](), None

    # -- admin ---------------------------------------------------------------------------------
    def admin(self, method: str, path: str, query_string: str, body: Any) -> Any:
        """The admin API (JSON, no auth): see README.md. One handler per endpoint (``_ADMIN``)."""
        handler = _ADMIN.get((method, path))
        if handler is None:
            raise _Answer(404, {"error": f"no admin endpoint {method} {path}"})
        query = dict(parse_qsl(query_string, keep_blank_values=True))
        return handler(self, query, body if isinstance(body, dict) else {})

    # Each admin handler takes the query parameters and the JSON object body ({} when none).
    def _admin_health(self, query: _Query, data: _Data) -> Any:
        return {"ok": True, "baseUrl": self.base_url}

    def _admin_orders(self, query: _Query, data: _Data) -> Any:
        return {"orders": self.exchange.admin_orders(query.get("key"), query.get("account"), query.get("market"))}

    def _admin_stats(self, query: _Query, data: _Data) -> Any:
        return self.requests.snapshot()

    def _admin_balances(self, query: _Query, data: _Data) -> Any:
        account = query.get("account", "main")
        return {"account": account, "balances": self.exchange.admin_balances(account)}

    def _admin_set_balance(self, query: _Query, data: _Data) -> Any:
        self.exchange.admin_set_balance(str(data["account"]), str(data["symbol"]), _decimal(data["available"]))
        return {"ok": True}

    def _admin_prices(self, query: _Query, data: _Data) -> Any:
        return {"prices": self.exchange.admin_prices()}

    def _admin_set_price(self, query: _Query, data: _Data) -> Any:
        try:
            self.exchange.admin_set_price(str(data["market"]), _decimal(data["price"]))
        except SimError as error:
            raise _Answer(400, error.body()) from None
        return {"ok": True}

    def _admin_set_market_status(self, query: _Query, data: _Data) -> Any:
        if data.get("status") not in MARKET_STATUSES or data.get("market") not in self.exchange.specs:
            raise _Answer(400, {"error": f"need a known market and a status in {MARKET_STATUSES}"})
        self.exchange.admin_set_market_status(str(data["market"]), str(data["status"]))
        return {"ok": True}

    def _admin_clock(self, query: _Query, data: _Data) -> Any:
        return {"now": self.clock.now_ms(), "offsetMs": self.clock.offset_ms, "skewMs": self.clock.skew_ms}

    def _admin_advance_clock(self, query: _Query, data: _Data) -> Any:
        if data.get("toNextMinute"):
            now = self.clock.advance_to_minute_start(int(data.get("ms", 0)))
        else:
            now = self.clock.advance(int(data["ms"]))
        self.exchange.sync()
        return {"now": now, "offsetMs": self.clock.offset_ms}

    def _admin_skew_clock(self, query: _Query, data: _Data) -> Any:
        now = self.clock.add_skew(int(data["ms"]))
        self.exchange.sync()
        return {"now": now, "offsetMs": self.clock.offset_ms, "skewMs": self.clock.skew_ms}

    def _admin_switches(self, query: _Query, data: _Data) -> Any:
        return {"switches": self.exchange.switches.to_json()}

    def _admin_set_switches(self, query: _Query, data: _Data) -> Any:
        ex = self.exchange
        with ex.lock:
            ex.switches = ex.switches.updated(data)
        return {"switches": ex.switches.to_json()}

    def _admin_add_foreign(self, query: _Query, data: _Data) -> Any:
        try:
            rows = self.exchange.admin_add_foreign(
                account=str(data.get("account", "main")),
                market=str(data["market"]),
                count=int(data.get("count", 1)),
                order_type=str(data.get("orderType", "trailingStop")),
                status=str(data.get("status", "pendingNew")),
                age_ms=int(data.get("ageMs", 0)),
                client_order_id=data.get("clientOrderId"),
            )
        except SimError as error:
            raise _Answer(400, error.body()) from None
        return {"orders": rows}

    def _admin_settle_fees(self, query: _Query, data: _Data) -> Any:
        return {"settled": self.exchange.admin_settle_fees(data.get("market"), data.get("clientOrderId"))}

    def _admin_faults(self, query: _Query, data: _Data) -> Any:
        return {"faults": self.faults.list()}

    def _admin_add_fault(self, query: _Query, data: _Data) -> Any:
        return {"fault": self.faults.add(Fault.from_json(data)).to_json()}

    def _admin_clear_faults(self, query: _Query, data: _Data) -> Any:
        self.faults.clear()
        return {"ok": True}

    def _admin_ratelimit(self, query: _Query, data: _Data) -> Any:
        return {"usage": self.limiter.usage(self.clock.now_ms())}

    def _admin_exhaust_ratelimit(self, query: _Query, data: _Data) -> Any:
        identity = f"key:{data['key']}" if data.get("key") else f"ip:{data.get('ip', '127.0.0.1')}"
        self.limiter.exhaust(identity, self.clock.now_ms())
        return {"ok": True, "identity": identity}

    def _admin_fresh_ratelimit(self, query: _Query, data: _Data) -> Any:
        self.limiter.reset()
        return {"ok": True}

    def _admin_add_key(self, query: _Query, data: _Data) -> Any:
        self.exchange.admin_add_key(
            ApiKey(
                key=str(data["key"]),
                secret=str(data["secret"]),
                account=str(data.get("account", "main")),
                permissions=frozenset(data.get("permissions", ["view", "trade"])),
            )
        )
        return {"ok": True}

    def _admin_refuse_connections(self, query: _Query, data: _Data) -> Any:
        self.pause_listening(float(data["seconds"]))
        return {"ok": True}

    def _admin_reset(self, query: _Query, data: _Data) -> Any:
        self.reset()
        return {"ok": True}


# The admin API: (method, path after /_admin) -> handler.
_ADMIN: dict[tuple[str, str], Callable[[BitvavoSimulator, _Query, _Data], Any]] = {
    ("GET", "/health"): BitvavoSimulator._admin_health,
    ("GET", "/orders"): BitvavoSimulator._admin_orders,
    ("GET", "/stats"): BitvavoSimulator._admin_stats,
    ("GET", "/balances"): BitvavoSimulator._admin_balances,
    ("POST", "/balances"): BitvavoSimulator._admin_set_balance,
    ("GET", "/prices"): BitvavoSimulator._admin_prices,
    ("POST", "/prices"): BitvavoSimulator._admin_set_price,
    ("POST", "/markets/status"): BitvavoSimulator._admin_set_market_status,
    ("GET", "/clock"): BitvavoSimulator._admin_clock,
    ("POST", "/clock/advance"): BitvavoSimulator._admin_advance_clock,
    ("POST", "/clock/skew"): BitvavoSimulator._admin_skew_clock,
    ("GET", "/switches"): BitvavoSimulator._admin_switches,
    ("POST", "/switches"): BitvavoSimulator._admin_set_switches,
    ("POST", "/history/foreign"): BitvavoSimulator._admin_add_foreign,
    ("POST", "/fees/settle"): BitvavoSimulator._admin_settle_fees,
    ("GET", "/faults"): BitvavoSimulator._admin_faults,
    ("POST", "/faults"): BitvavoSimulator._admin_add_fault,
    ("DELETE", "/faults"): BitvavoSimulator._admin_clear_faults,
    ("GET", "/ratelimit"): BitvavoSimulator._admin_ratelimit,
    ("POST", "/ratelimit/exhaust"): BitvavoSimulator._admin_exhaust_ratelimit,
    ("POST", "/ratelimit/fresh"): BitvavoSimulator._admin_fresh_ratelimit,
    ("POST", "/keys"): BitvavoSimulator._admin_add_key,
    ("POST", "/refuse_connections"): BitvavoSimulator._admin_refuse_connections,
    ("POST", "/reset"): BitvavoSimulator._admin_reset,
}


def _decimal(raw: object) -> Decimal:
    try:
        return Decimal(str(raw))
    except InvalidOperation:
        raise ValueError(f"not a decimal: {raw!r}") from None
