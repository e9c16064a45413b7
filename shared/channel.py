"""Client channels between services (and from oraclectl): TLS and a bearer credential on every call.

:func:`open_channel` gives a plaintext channel (loopback, ``make run``) or, with
:class:`~shared.tls.TlsFiles`, a TLS channel presenting this party's client certificate. A TLS
channel follows its files: when the certificate, key or CA bundle change, the next call opens a
connection with the new ones, while calls already running finish on the old connection (closed
a grace period later), so a rotation drops no call. The bearer credential is read per call, so a
token read from a file (:class:`TokenFile`) rotates the same way.

The OpenTelemetry client instrumentation (shared.telemetry) propagates the trace context.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from shared.tls import TlsFiles
from shared.watched import WatchedFile

# A bearer credential: fixed, or read at each call (a rotating file).
Credential = str | Callable[[], str] | None

_OPTIONS = [
    ("grpc.keepalive_time_ms", 30000),
    ("grpc.enable_retries", 0),  # callers decide what may be retried; never an execution
]

# How long a connection opened with rotated-out files stays open for the calls still on it.
RETIRED_CHANNEL_GRACE_SECONDS = 300.0


class TokenFile:
    """A bearer token read from a file (first non-empty line), re-read when the file changes."""

    def __init__(self, path: str | Path) -> None:
        self._file = WatchedFile(path, _first_line)

    def __call__(self) -> str:
        return self._file.get()


def token_file_or(path: str, token: str) -> Credential:
    """The token of the file at ``path`` (followed as it changes) when one is given, else ``token``."""
    return TokenFile(path) if path else token


def _first_line(data: bytes) -> str:
    for line in data.decode().splitlines():
        if line.strip():
            return line.strip()
    raise ValueError("empty token file")


class _BearerChannel(grpc.Channel):  # type: ignore[misc]
    """``channel`` with the bearer credential added to the metadata of every unary call.

    Added by wrapping the method's callable rather than with ``grpc.intercept_channel``: gRPC's
    client interceptor machinery (call details, continuation, outcome objects) cost about a tenth
    of a unary call's client CPU, on every call between services. Streaming methods carry no
    credential, as before (the services serve unary RPCs only)."""

    def __init__(self, channel: grpc.Channel, token: str | Callable[[], str]) -> None:
        self._channel = channel
        self._token = token if callable(token) else (lambda: token)

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _WithToken(self._channel.unary_unary(method, *args, **kwargs), self._token)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.unary_stream(method, *args, **kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.stream_unary(method, *args, **kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.stream_stream(method, *args, **kwargs)

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        self._channel.subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Any) -> None:
        self._channel.unsubscribe(callback)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> _BearerChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# A unary callable's parameters after the request, in gRPC's order (callers may pass them by
# position).
_CALL_PARAMETERS = ("timeout", "metadata", "credentials", "wait_for_ready", "compression")


class _WithToken(grpc.UnaryUnaryMultiCallable):  # type: ignore[misc]
    """A unary method's callable sending the bearer credential after the caller's metadata."""

    def __init__(self, inner: Any, token: Callable[[], str]) -> None:
        self._inner = inner
        self._token = token

    def _keywords(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        named = {**dict(zip(_CALL_PARAMETERS, args, strict=False)), **kwargs}
        named["metadata"] = [*(named.get("metadata") or ()), ("authorization", f"Bearer {self._token()}")]
        return named

    def __call__(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        return self._inner(request, **self._keywords(args, kwargs))

    def with_call(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        return self._inner.with_call(request, **self._keywords(args, kwargs))

    def future(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        return self._inner.future(request, **self._keywords(args, kwargs))


class _FollowingChannel(grpc.Channel):  # type: ignore[misc]
    """A TLS channel that reconnects with new files when they change (see the module docstring)."""

    def __init__(self, target: str, tls: TlsFiles) -> None:
        self._target = target
        self._tls = tls
        self._lock = threading.Lock()
        self._files = tls.current()
        self._channel = self._open(self._files)
        self._retired: list[threading.Timer] = []

    def _open(self, files: tuple[bytes, bytes, bytes]) -> grpc.Channel:
        cert, key, ca = files
        credentials = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
        return grpc.secure_channel(self._target, credentials, options=_OPTIONS)

    def current(self) -> grpc.Channel:
        files = self._tls.current()
        if files == self._files:
            return self._channel
        with self._lock:
            if files != self._files:
                old, self._channel, self._files = self._channel, self._open(files), files
                timer = threading.Timer(RETIRED_CHANNEL_GRACE_SECONDS, old.close)
                timer.daemon = True
                timer.start()
                self._retired.append(timer)
            return self._channel

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Delegate(lambda: self.current().unary_unary(method, *args, **kwargs))

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self.current().unary_stream(method, *args, **kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self.current().stream_unary(method, *args, **kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self.current().stream_stream(method, *args, **kwargs)

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        self.current().subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Any) -> None:
        self.current().unsubscribe(callback)

    def close(self) -> None:
        with self._lock:
            for timer in self._retired:
                timer.cancel()
            self._channel.close()

    def __enter__(self) -> _FollowingChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Delegate(grpc.UnaryUnaryMultiCallable):  # type: ignore[misc]
    """A stub's callable that resolves the current connection at each call."""

    def __init__(self, resolve: Callable[[], Any]) -> None:
        self._resolve = resolve

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._resolve()(*args, **kwargs)

    def with_call(self, *args: Any, **kwargs: Any) -> Any:
        return self._resolve().with_call(*args, **kwargs)

    def future(self, *args: Any, **kwargs: Any) -> Any:
        return self._resolve().future(*args, **kwargs)


def open_channel(target: str, token: Credential, *, tls: TlsFiles | None = None) -> grpc.Channel:
    """A channel to ``target`` (host:port) sending ``token`` as the bearer credential.

    Plaintext without ``tls`` (loopback only: servers elsewhere refuse plaintext), else TLS
    presenting ``tls``'s certificate and verifying the server's against its CA bundle.
    """
    channel: grpc.Channel
    if tls is None:
        channel = grpc.insecure_channel(target, options=_OPTIONS)
    else:
        channel = _FollowingChannel(target, tls)
    if token:
        return _BearerChannel(channel, token)
    return channel
