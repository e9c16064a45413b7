"""Bitvavo error codes as the simulator answers them: code, message text and HTTP status.

The HTTP statuses follow Bitvavo's documented mapping: 403 for 300–320, 404 for 240, 429 for 105,
500 for 101/400, 503 for 107/108/109/111, 409 for 431, 400 for everything else. Every error goes
out as JSON ``{"errorCode": int, "error": str}``; the SDK ignores the status and reads the body.
"""

from __future__ import annotations

from typing import Any

_HTTP_BY_CODE: dict[int, int] = {
    101: 500,
    400: 500,
    105: 429,
    112: 429,
    107: 503,
    108: 503,
    109: 503,
    111: 503,
    419: 503,
    430: 503,
    240: 404,
    415: 404,
    431: 409,
}

MESSAGES: dict[int, str] = {
    101: "Unknown error. Operation may or may not have succeeded.",
    102: "Invalid JSON.",
    107: "Bitvavo is overloaded. Please retry after 500ms.",
    108: "Bitvavo could not process your request in time.",
    109: "The request timed out. Operation may or may not have succeeded.",
    110: "Invalid endpoint. Please check url and HTTP method.",
    111: "The matching engine is unavailable.",
    210: "Amount exceeds the maximum allowed amount (1000000000).",
    212: "Amount is below the minimum allowed amount for this asset.",
    214: "Price has too many significant digits.",
    216: "You do not have sufficient balance to complete this operation.",
    220: "clientOrderId conflict within the market.",
    233: "Order must be active (status new or partiallyFilled) to allow updating/cancelling.",
    235: "You can only have 100 open orders on each book.",
    240: "No order found. Please be aware that simultaneously updating the same order may return this error.",
    300: "Authentication is required for this endpoint.",
    301: "API Key must be of length 64.",
    302: (
        "Timestamp is invalid. This must be a timestamp in ms. See Bitvavo-Access-Timestamp header "
        "or timestamp parameter for websocket."
    ),
    303: "Window must be between 100 and 60000 ms.",
    304: (
        "Request was not received within acceptable window (default 30s, or custom with "
        "Bitvavo-Access-Window header) of Bitvavo-Access-Timestamp header (or timestamp parameter for websocket)."
    ),
    305: "No active API key found.",
    306: "No active API key found. Please ensure that you have confirmed the API key by e-mail.",
    308: "The signature length is invalid (HMAC-SHA256 should return a 64 length hexadecimal string).",
    309: "The signature is invalid.",
    310: "This key does not allow trading actions.",
    311: "This key does not allow showing account information.",
    423: "The market is halted. No orders can be placed.",
    424: "The market is in cancelOnly mode. Only cancelling orders is allowed.",
    425: "The market is in auction. Only limit orders with timeInForce GTC are allowed.",
    426: "The market is matching its auction. Orders are not accepted.",
}


def http_status_for(code: int) -> int:
    """The HTTP status Bitvavo sends with error ``code``."""
    if 300 <= code <= 320:
        return 403
    return _HTTP_BY_CODE.get(code, 400)


def ban_message(expiry_ms: int) -> str:
    """The 105 text. The SDK takes ``error.split(' at ')[1].split('.')[0]`` as the expiry in ms,
    so the first ``" at "`` must come right before the number and a ``.`` must follow it."""
    return f"Your IP or API key has been banned for not respecting the rate limit. The ban expires at {expiry_ms}."


class SimError(Exception):
    """An error answer: raised anywhere inside request handling, turned into JSON by the server."""

    def __init__(self, code: int, message: str | None = None) -> None:
        self.code = code
        self.message = message if message is not None else MESSAGES.get(code, f"Error {code}.")
        super().__init__(f"{code}: {self.message}")

    @property
    def http_status(self) -> int:
        return http_status_for(self.code)

    def body(self) -> dict[str, Any]:
        return {"errorCode": self.code, "error": self.message}


def required(param: str) -> SimError:
    """203, the pattern Bitvavo uses for a missing parameter."""
    return SimError(203, f"{param} parameter is required.")


def invalid(param: str) -> SimError:
    """205, the pattern Bitvavo uses for an invalid value (an unknown market too)."""
    return SimError(205, f"{param} parameter is invalid.")
