"""Client channels between services (and from oraclectl): bearer token on every call.

The OpenTelemetry client instrumentation (shared.telemetry) propagates the trace context.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc


class _BearerToken(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, token: str) -> None:
        self._metadata = ("authorization", f"Bearer {token}")

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        metadata = [*(details.metadata or ()), self._metadata]
        return continuation(_Details(details, metadata), request)


class _Details(grpc.ClientCallDetails):  # type: ignore[misc]
    def __init__(self, base: Any, metadata: list[tuple[str, str]]) -> None:
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = metadata
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


def open_channel(target: str, token: str | None) -> grpc.Channel:
    """A plaintext channel to ``target`` (host:port) sending ``token`` as the principal."""
    channel = grpc.insecure_channel(
        target,
        options=[
            ("grpc.keepalive_time_ms", 30000),
            ("grpc.enable_retries", 0),  # callers decide what may be retried; never an execution
        ],
    )
    if token:
        return grpc.intercept_channel(channel, _BearerToken(token))
    return channel
