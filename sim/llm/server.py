"""``LlmSimulator``: an OpenAI-compatible chat-completions endpoint on a local port (a simulator for
tests and the demo, never a model).

``POST /v1/chat/completions`` answers deterministically from the market data in the prompt
(sim.llm.answers), in the OpenAI response shape with ``usage`` token counts (:func:`tokens`: one per
digit, about four characters per token otherwise), honouring ``max_tokens`` / ``max_completion_tokens`` (a longer answer is
cut and ends with ``finish_reason: "length"``). ``GET /v1/models`` lists the one model. With an
API key configured, requests without ``Authorization: Bearer <key>`` get 401.

Admin API (plain JSON, loopback only, never counted or faulted):
``GET /_admin/stats`` (requests received, by path; completions answered and the token usage
each reported),
``GET /_admin/requests`` (the last completion request bodies), ``GET|POST|DELETE /_admin/faults``
(see sim.llm.faults), ``POST /_admin/reset``, ``GET /_admin/health``.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import Counter, deque
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from sim.llm.answers import decide, market_data
from sim.llm.faults import FaultBook

logger = logging.getLogger(__name__)

MODEL = "oracle-sim-analyst"
CHARS_PER_TOKEN = 4
KEPT_REQUESTS = 500


def tokens(text: str) -> int:
    """The simulator's token count of ``text``, at least one: like a real tokenizer, every digit
    is a token of its own (numbers are split into short digit groups, so digit-heavy text runs
    near one token per character), and other text counts one token per four characters."""
    digits = sum(1 for c in text if "0" <= c <= "9")
    return max(1, digits + math.ceil((len(text) - digits) / CHARS_PER_TOKEN))


def cut(text: str, limit: int) -> str:
    """The longest start of ``text`` that counts at most ``limit`` tokens."""
    low, high = 0, len(text)
    while low < high:  # tokens() grows with the prefix: binary search for the longest that fits
        middle = (low + high + 1) // 2
        if tokens(text[:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    return text[:low]


HUGE_AMOUNT = "1E+30"
NUL_MODEL_SUFFIX = "\u0000\u001b[2J"


def _fault_content(kind: str, answer: dict[str, Any], data: dict[str, Any] | None) -> str:
    if kind == "invalid_json":
        return "Sure! I think you should buy. {side: buy"
    broken = dict(answer)
    if kind == "confidence_30":
        broken["confidence"] = 30
    elif kind == "negative_amount":
        broken["amount_eur"] = "-25.00"
    elif kind == "zero_amount":
        broken["amount_eur"] = "0"
    elif kind == "huge_amount":
        broken["amount_eur"] = HUGE_AMOUNT
    elif kind == "above_max_amount":
        broken["amount_eur"] = str(_max_order(data) + Decimal("0.01"))
    elif kind == "unknown_side":
        broken["side"] = "moon"
    if broken["side"] == "hold" and kind not in ("invalid_json", "unknown_side"):
        broken["side"] = "buy"  # a hold would hide the broken field
    return json.dumps(broken)


def _max_order(data: dict[str, Any] | None) -> Decimal:
    try:
        return Decimal(str((data or {})["max_order_eur"])).quantize(Decimal("0.01"))
    except (KeyError, InvalidOperation):
        return Decimal("1000000.00")


class _State:
    """Counters, recent requests and faults of one simulator."""

    def __init__(self, api_key: str | None) -> None:
        self.api_key = api_key
        self.lock = threading.Lock()
        self.by_path: Counter[str] = Counter()
        self.completions = 0
        self.recent: deque[dict[str, Any]] = deque(maxlen=KEPT_REQUESTS)
        self.faults = FaultBook()
        self.sequence = 0
        # (prompt_tokens, completion_tokens) of each answered completion, as reported in ``usage``.
        self.usage: deque[tuple[int, int]] = deque(maxlen=KEPT_REQUESTS)

    def reset(self) -> None:
        with self.lock:
            self.by_path.clear()
            self.completions = 0
            self.recent.clear()
            self.usage.clear()
        self.faults.clear()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("llm-sim: " + format, *args)

    # -- plumbing ------------------------------------------------------------------------------
    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str, code: str | None = None) -> None:
        self._send(status, {"error": {"message": message, "type": kind, "param": None, "code": code}})

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return ValueError

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _route(self, method: str) -> None:
        path = urlsplit(self.path).path
        body = self._body()
        if path.startswith("/_admin/"):
            self._admin(method, path[len("/_admin") :], body)
            return
        state = self.server.state
        with state.lock:
            state.by_path[f"{method} {path}"] += 1
        if state.api_key is not None and self.headers.get("Authorization") != f"Bearer {state.api_key}":
            self._error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        elif method == "POST" and path == "/v1/chat/completions":
            self._complete(body)
        elif method == "GET" and path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "oracle-sim"}]})
        else:
            self._error(404, f"Unknown request URL: {method} {path}.", "invalid_request_error", "unknown_url")

    # -- the API -------------------------------------------------------------------------------
    def _complete(self, body: Any) -> None:
        state = self.server.state
        if body is ValueError or not isinstance(body, dict):
            self._error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
            return
        messages = body.get("messages")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            self._error(400, "you must provide a model parameter", "invalid_request_error", "missing_model")
            return
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            self._error(400, "messages must be a non-empty array of objects", "invalid_request_error")
            return
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            self._error(400, "max_tokens must be a positive integer", "invalid_request_error")
            return
        with state.lock:
            state.recent.append(body)
            state.sequence += 1
            sequence = state.sequence
        effects = state.faults.take()
        if effects.delay_seconds:
            time.sleep(effects.delay_seconds)
        if effects.kind == "http_500":
            self._error(500, "The server had an error while processing your request.", "server_error")
            return
        data = market_data(messages)
        answer = decide(data)
        reported_model = model
        if effects.kind is None:
            content = json.dumps(answer)
        elif effects.kind == "nul_model":
            content = json.dumps(answer)
            reported_model = model + NUL_MODEL_SUFFIX
        else:
            content = _fault_content(effects.kind, answer, data)
        finish = "stop"
        completion_tokens = tokens(content)
        if limit is not None and completion_tokens > limit:
            content = cut(content, limit)
            completion_tokens = limit
            finish = "length"
        prompt_tokens = sum(tokens(str(m.get("content", ""))) + 4 for m in messages)
        with state.lock:
            state.completions += 1
            state.usage.append((prompt_tokens, completion_tokens))
        self._send(
            200,
            {
                "id": f"chatcmpl-sim-{sequence}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": reported_model,
                "system_fingerprint": "oracle-llm-sim",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content, "refusal": None},
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )

    # -- admin ---------------------------------------------------------------------------------
    def _admin(self, method: str, path: str, body: Any) -> None:
        state = self.server.state
        if self.client_address[0] not in ("127.0.0.1", "::1"):
            self._send(403, {"error": "admin API is loopback only"})
        elif (method, path) == ("GET", "/health"):
            self._send(200, {"ok": True, "model": MODEL})
        elif (method, path) == ("GET", "/stats"):
            with state.lock:
                self._send(
                    200,
                    {
                        "requests": sum(state.by_path.values()),
                        "completions": state.completions,
                        "by_path": dict(state.by_path),
                        "usage": [list(u) for u in state.usage],
                    },
                )
        elif (method, path) == ("GET", "/requests"):
            with state.lock:
                self._send(200, {"requests": list(state.recent)})
        elif (method, path) == ("GET", "/faults"):
            self._send(200, {"faults": state.faults.list()})
        elif (method, path) == ("POST", "/faults"):
            spec = body if isinstance(body, dict) else {}
            try:
                fault = state.faults.add(
                    str(spec.get("kind", "")), spec.get("count", 1), float(spec.get("seconds", 0.0))
                )
            except (TypeError, ValueError) as exc:
                self._send(400, {"error": str(exc)})
                return
            self._send(200, {"fault": fault.to_json()})
        elif (method, path) == ("DELETE", "/faults"):
            state.faults.clear()
            self._send(200, {"faults": []})
        elif (method, path) == ("POST", "/reset"):
            state.reset()
            self._send(200, {"ok": True})
        else:
            self._send(404, {"error": f"unknown admin call {method} {path}"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default backlog of 5 stalls concurrent clients (TOOLCHAIN.md)

    def __init__(self, address: tuple[str, int], state: _State) -> None:
        super().__init__(address, _Handler)
        self.state = state


class LlmSimulator:
    """An OpenAI-compatible LLM simulator on ``host:port`` (0 = a free port)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, api_key: str | None = None) -> None:
        self._address = (host, port)
        self._state = _State(api_key)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as ``base_url``: ``http://HOST:PORT/v1``."""
        if self._server is None:
            raise RuntimeError("simulator not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> str:
        """Start serving in a background thread; returns the base URL."""
        self._server = _Server(self._address, self._state)
        self._thread = threading.Thread(target=self._server.serve_forever, name="llm-sim", daemon=True)
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> LlmSimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
