"""gRPC server bootstrap used by all three services.

:func:`create_server` builds a sync gRPC server (thread pool) with: the standard health service
(NOT_SERVING while the database is unreachable, SERVING again when it is back), server
reflection with names taken from the generated descriptors, and :class:`CallInterceptor`, which
establishes the principal (shared.authentication), checks :data:`shared.principals.RIGHTS` for
the method and the user the request names, maps domain errors to status codes with google.rpc
details, and writes one JSON log line per call. The service port speaks TLS with required client
certificates when the settings name the files (shared.tls), plaintext otherwise (loopback or
behind a mesh: ServiceSettings refuses anything else); :func:`start_plain_port` serves the
health service alone on a plaintext side port for kubelet probes.
Request bytes that do not decode (or carry invalid UTF-8 in a string field) are refused by the
same interceptor as INVALID_ARGUMENT, audited through the same token bucket as the other
refusals, never INTERNAL.
:meth:`RunningServer.run_until_signalled` handles SIGTERM/SIGINT with a graceful shutdown.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status

from shared import metrics, principals, watched
from shared.authentication import Authenticator
from shared.config import AuthMode, ServiceSettings
from shared.db import Database
from shared.errors import InvalidArgument, OracleError, PermissionDenied, Unauthenticated
from shared.tls import TlsFiles

log = logging.getLogger(__name__)

# Health entry for liveness probes: SERVING while the process answers at all, whatever the
# database does (readiness uses "" and the service names, which follow the database).
LIVENESS = "liveness"

AuditHook = Callable[[str, str, dict[str, Any]], None]  # (kind, principal, payload)


@dataclass(frozen=True)
class ServiceBinding:
    """One gRPC service to serve: its full name (from the descriptor) and its registrar."""

    full_name: str
    register: Callable[[grpc.Server], None]


class CallInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Authentication, authorization, error mapping and call logging for unary RPCs."""

    def __init__(
        self,
        service: str,
        authenticator: Authenticator,
        audit: AuditHook | None,
        *,
        audit_limit: RefusalAuditLimit | None = None,
    ) -> None:
        self._service = service
        self._authenticator = authenticator
        self._audit = audit
        self._audit_limit = audit_limit or RefusalAuditLimit()
        self._wrapped: dict[str, tuple[Any, Any]] = {}  # method -> (its handler, the wrapper)

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = continuation(details)
        method: str = details.method
        if handler is None or method.startswith(_UNAUTHENTICATED_SERVICES):
            return handler
        # gRPC asks for the handler on every call; the wrapper depends on the method's handler
        # alone (the call's metadata is read from its context), so it is built once per method.
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(handler, method)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, handler: Any, method: str) -> Any:
        if handler.unary_unary is None:
            # Fail closed: only unary RPCs pass the checks below; a streaming RPC added later
            # must not bypass authentication silently.
            return _refuse_streaming(handler, method)
        inner = handler.unary_unary

        def behaviour(request: Any, context: grpc.ServicerContext) -> Any:
            return self._serve(inner, request, context, method, tuple(context.invocation_metadata() or ()))

        return grpc.unary_unary_rpc_method_handler(
            behaviour,
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )

    def _record(self, kind: str, principal: str, payload: dict[str, Any]) -> None:
        if self._audit is None:
            return
        suppressed = self._audit_limit.admit()
        if suppressed is None:
            return  # a flood: counted, and reported with the next event that is written
        if suppressed:
            payload = {**payload, "suppressed_before": suppressed}
        self._audit(kind, principal, payload)

    def _serve(
        self, inner: Any, request: Any, context: grpc.ServicerContext, method: str, metadata: tuple[Any, ...]
    ) -> Any:
        started = time.monotonic()
        code = grpc.StatusCode.OK
        principal = ""
        try:
            try:
                caller, refused = self._authenticator.identify(metadata, context.auth_context())
            except Unauthenticated as exc:
                self._record("auth.unauthenticated", "", {"method": method, "reason": exc.reason})
                raise
            principal = str(caller)
            # An undecodable request names no user: a principal bound to one user is refused it.
            readable = None if isinstance(request, Undecodable) else request
            refused = refused or principals.refusal(caller, method, readable)
            if refused:
                raise PermissionDenied(f"principal {principal} may not call {method} for this user", reason=refused)
            if isinstance(request, Undecodable):
                self._record("request.undecodable", principal, {"method": method, "error": request.error})
                raise InvalidArgument.one(
                    "request", "is not a valid protobuf message of this method (or a string field is not UTF-8)"
                )
            token = principals.set_current_principal(principal)
            try:
                return inner(request, context)
            finally:
                principals.reset_current_principal(token)
        except OracleError as exc:
            code = exc.code
            if code is grpc.StatusCode.INTERNAL:
                log.exception("broken invariant in %s", method)
            if isinstance(exc, PermissionDenied):
                self._record("auth.permission_denied", principal, {"method": method, "reason": exc.reason})
            context.abort_with_status(rpc_status.to_status(exc.to_status()))
        except Exception:
            if _already_aborted(context):
                raise
            code = grpc.StatusCode.INTERNAL
            log.exception("unexpected error in %s", method)
            context.abort(grpc.StatusCode.INTERNAL, "internal error")
        finally:
            elapsed = time.monotonic() - started
            metrics.rpc_served(self._service, method, code.name, elapsed)
            log.info(
                "rpc",
                extra={
                    "rpc_method": method,
                    "principal": principal,
                    "code": code.name,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
        return None  # unreachable: abort raises


class Undecodable:
    """Stands in for a request whose bytes the method's deserializer refused.

    gRPC answers a deserializer's exception with INTERNAL before any interceptor code runs, so
    the deserializer is wrapped (:func:`_tolerant`) to hand this marker to ``_serve`` instead,
    which refuses it after authentication like any other bad request."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error  # the exception's type name only: the bytes are the caller's, not logged


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """``deserializer``, answering :class:`Undecodable` instead of raising."""
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # DecodeError, invalid UTF-8...: whatever the bytes provoke is the caller's fault
            return Undecodable(type(exc).__name__)

    return deserialize


# Health checks (probes) and reflection (grpcurl list/describe) answer without a principal.
_UNAUTHENTICATED_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/")


def _refuse_streaming(handler: Any, method: str) -> Any:
    def refuse(_request: Any, context: grpc.ServicerContext) -> Any:
        log.error("streaming RPC %s refused: the interceptor authenticates unary RPCs only", method)
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "streaming RPCs are not served")

    kinds = {
        "unary_stream": grpc.unary_stream_rpc_method_handler,
        "stream_unary": grpc.stream_unary_rpc_method_handler,
        "stream_stream": grpc.stream_stream_rpc_method_handler,
    }
    for kind, make in kinds.items():
        if getattr(handler, kind) is not None:
            return make(
                refuse,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return None


class RefusalAuditLimit:
    """A token bucket for the audit events of refused calls.

    Refusals come from callers we do not trust; each audit event is a write on the serialized
    _system chain, so a flood of bad calls must not become a flood of database writes. Events
    over the limit are counted, and the count rides on the next event written.
    """

    def __init__(self, burst: int = 20, per_second: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._burst = float(burst)
        self._rate = per_second
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()
        self._suppressed = 0
        self._lock = threading.Lock()

    def admit(self) -> int | None:
        """None: do not write this event. Otherwise write it; the value is how many were skipped."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
            self._at = now
            if self._tokens < 1:
                self._suppressed += 1
                return None
            self._tokens -= 1
            skipped, self._suppressed = self._suppressed, 0
            return skipped


def _already_aborted(context: grpc.ServicerContext) -> bool:
    code_of = getattr(context, "code", None)
    return bool(callable(code_of) and code_of() not in (None, grpc.StatusCode.OK))


@dataclass
class RunningServer:
    """A started server: where it listens, its health servicer, and how to stop it."""

    server: grpc.Server
    port: int
    health: health.HealthServicer
    service_names: tuple[str, ...]
    grace_seconds: float
    on_shutdown: list[Callable[[], None]] = field(default_factory=list)
    service: str = ""
    health_port: int | None = None  # the plaintext grpc.health.v1 port, when one is configured
    _stopped: threading.Event = field(default_factory=threading.Event)

    def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *self.service_names):
            self.health.set(name, status)
        metrics.service_ready(self.service, serving)

    def shutdown(self) -> None:
        """Refuse new calls, let in-flight calls finish within the grace period, run hooks."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(self.grace_seconds).wait()
        for hook in reversed(self.on_shutdown):
            try:
                hook()
            except Exception:
                log.exception("shutdown hook failed")

    def run_until_signalled(self) -> None:
        """Block until SIGTERM or SIGINT, then shut down gracefully."""
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        # SIGHUP: re-read every credential file now (they are also re-read when they change).
        signal.signal(signal.SIGHUP, lambda *_: watched.reload_all())
        while not stop.wait(0.5):
            pass
        log.info("signal received, shutting down", extra={"grace_seconds": self.grace_seconds})
        self.shutdown()
        log.info("stopped")


def create_server(
    *,
    service: str,
    bindings: Sequence[ServiceBinding],
    settings: ServiceSettings,
    db: Database | None,
    audit: AuditHook | None = None,
) -> RunningServer:
    """Build and start a server for ``bindings``; returns it with its bound port."""
    authenticator = Authenticator.from_settings(settings)
    if settings.auth_mode is AuthMode.INSECURE_DEV:
        for _ in range(3):
            log.warning(
                "AUTHENTICATION IS OFF (auth_mode=insecure-dev): every caller is trusted. "
                "Local development only; never expose this port."
            )
    elif not authenticator.has_credentials:
        log.warning("no principal tokens configured: every call will be UNAUTHENTICATED")
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix=f"{service}-rpc"),
        interceptors=[CallInterceptor(service, authenticator, audit)],
        options=[
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", 4 * 1024 * 1024),
            ("grpc.max_connection_age_ms", int(settings.max_connection_age_seconds * 1000)),
            ("grpc.max_connection_age_grace_ms", int(max(settings.grace_seconds, 30.0) * 1000)),
        ],
    )
    for binding in bindings:
        binding.register(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = tuple(b.full_name for b in bindings)
    reflection.enable_server_reflection((*names, reflection.SERVICE_NAME, health.SERVICE_NAME), server)
    if settings.tls_enabled:
        tls = TlsFiles(settings.tls_cert_file, settings.tls_key_file, settings.tls_ca_file)
        port = server.add_secure_port(settings.listen_addr, tls.server_credentials())
    else:  # loopback, or a mesh terminates TLS (ServiceSettings refuses anything else)
        port = server.add_insecure_port(settings.listen_addr)
    if port == 0:
        raise RuntimeError(f"cannot listen on {settings.listen_addr}")
    running = RunningServer(server, port, health_servicer, names, settings.grace_seconds, service=service)
    health_servicer.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
    server.start()
    if settings.health_listen_addr:
        probe = start_plain_port(
            settings.health_listen_addr, health_pb2_grpc.add_HealthServicer_to_server, health_servicer
        )
        running.health_port = probe.port
        running.on_shutdown.append(probe.stop)
    if db is None:
        running.set_serving(True)
    else:
        _watch_database(running, db, settings.db_health_interval_seconds)
    return running


@dataclass(frozen=True)
class PlainPort:
    """A plaintext side port (probes): where it listens and how to stop it."""

    port: int
    stop: Callable[[], None]


def start_plain_port(listen_addr: str, register: Callable[[Any, grpc.Server], None], servicer: Any) -> PlainPort:
    """A plaintext gRPC server on ``listen_addr`` serving only ``servicer``.

    No interceptor and no reflection: it carries nothing but what it is given (grpc.health.v1
    for kubelet's gRPC probes, which cannot speak TLS), so it needs no credential.
    """
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="probe"))
    register(servicer, server)
    port = server.add_insecure_port(listen_addr)
    if port == 0:
        raise RuntimeError(f"cannot listen on {listen_addr}")
    server.start()
    return PlainPort(port, lambda: server.stop(0).wait())


def _watch_database(running: RunningServer, db: Database, interval: float) -> None:
    """Health follows the database: NOT_SERVING while it is unreachable."""
    running.set_serving(db.ping())
    stop = threading.Event()

    def loop() -> None:
        serving: bool | None = None
        while not stop.wait(interval):
            now_ok = db.ping()
            if now_ok != serving:
                log.log(logging.INFO if now_ok else logging.WARNING, "database %s", "up" if now_ok else "down")
                running.set_serving(now_ok)
                serving = now_ok

    thread = threading.Thread(target=loop, name="db-health", daemon=True)
    thread.start()
    running.on_shutdown.append(stop.set)
