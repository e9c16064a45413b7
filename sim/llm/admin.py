"""``LlmSimulatorAdmin``: drive a running LLM simulator (in this process or another) from tests."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests


class LlmSimulatorAdmin:
    """The admin API of the simulator whose base URL (``http://HOST:PORT/v1``) is given."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        parts = urlsplit(base_url)
        self.url = f"{parts.scheme}://{parts.netloc}/_admin"
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = requests.request(method, self.url + path, json=body, timeout=self.timeout)
        if response.status_code != 200:
            raise RuntimeError(f"admin {method} {path}: {response.status_code} {response.text}")
        return response.json()

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/stats")
        return result

    def request_count(self) -> int:
        """Requests that reached the API (every path, answered or not)."""
        return int(self.stats()["requests"])

    def completion_count(self) -> int:
        """Chat completions answered with 200."""
        return int(self.stats()["completions"])

    def usage(self) -> list[tuple[int, int]]:
        """(prompt_tokens, completion_tokens) each answered completion reported, oldest first."""
        return [(int(p), int(c)) for p, c in self.stats()["usage"]]

    def requests(self) -> list[dict[str, Any]]:
        """The last chat-completion request bodies, oldest first."""
        result: list[dict[str, Any]] = self._call("GET", "/requests")["requests"]
        return result

    def add_fault(self, kind: str, *, count: int | None = 1, seconds: float = 0.0) -> dict[str, Any]:
        """Arm a fault (one of sim.llm.faults.KINDS): ``count`` requests, or None for until cleared."""
        result: dict[str, Any] = self._call("POST", "/faults", {"kind": kind, "count": count, "seconds": seconds})[
            "fault"
        ]
        return result

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def reset(self) -> None:
        self._call("POST", "/reset")
