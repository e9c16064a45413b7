"""Process wiring shared by the three services' entry points:
settings → logging → tracing → metrics → database pool → servicers → server → wait for SIGTERM.

Each ``services/<name>/__main__.py`` only says how to load its settings and which servicers to
build; everything else happens here, once — including the one way to refuse to start:
``build`` raises :class:`StartupRefused` and the process exits with its code.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from shared import audit
from shared.config import ConfigError, ServiceSettings
from shared.db import Database
from shared.logs import setup_logging
from shared.metrics import setup_metrics
from shared.server import RunningServer, ServiceBinding, create_server
from shared.telemetry import setup_tracing

log = logging.getLogger(__name__)

S = TypeVar("S", bound=ServiceSettings)

# A configuration error (a variable missing or invalid) exits with this code.
EXIT_CONFIG = 2


class StartupRefused(Exception):
    """This process must not serve (a key that can do too much, a venue that fails its check …).

    ``run_main`` logs the message, writes it to stderr and exits with ``exit_code``; the message
    must name what to fix and never carry a secret.
    """

    def __init__(self, message: str, *, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def open_database(settings: ServiceSettings, *, service: str, role: str) -> Database:
    """This service's pool, opened without waiting for the database.

    A service never starts a database of its own: without its DATABASE_URL it refuses to start
    (``make run`` passes each service its role's URL on the local embedded PostgreSQL), so a
    production pod with a missing Secret fails loudly instead of running on an empty database.
    """
    if settings.database_url is None:
        raise ConfigError([f"{service.upper()}_DATABASE_URL: is required (make run sets it for the local database)"])
    db = Database(
        settings.database_url.get_secret_value(),
        name=f"oracle-{service}",
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        timeout=settings.db_pool_timeout_seconds,
        statement_timeout_ms=settings.statement_timeout_ms,
        expected_role=role,
    )
    db.open()
    return db


def start_service(
    *,
    service: str,
    settings: ServiceSettings,
    db: Database,
    bindings: Sequence[ServiceBinding],
    metrics_port: int | None = None,
) -> RunningServer:
    """Start the server for ``bindings``; refused principals go to the _system audit chain."""

    def record(kind: str, principal: str, payload: dict[str, object]) -> None:
        audit.append_system_event(db, service=service, kind=kind, principal=principal, payload=payload)

    running = create_server(service=service, bindings=bindings, settings=settings, db=db, audit=record)
    running.on_shutdown.append(db.close)
    host = settings.listen_addr.rsplit(":", 1)[0] or "0.0.0.0"
    where = {
        "event": "listening",
        "address": f"{host}:{running.port}",
        "port": running.port,
        "health_port": running.health_port,
        "tls": settings.tls_enabled,
    }
    if metrics_port is not None:  # the plaintext scrape endpoint (shared.metrics)
        metrics_host = settings.metrics_addr.rsplit(":", 1)[0] or "0.0.0.0"
        where |= {"metrics_url": f"http://{metrics_host}:{metrics_port}/metrics", "metrics_port": metrics_port}
    log.info("listening", extra=where)
    return running


def run_main(
    service: str,
    load_settings: Callable[[Mapping[str, str]], S],
    build: Callable[[S, Database], tuple[Sequence[ServiceBinding], Sequence[Callable[[], None]]]],
    *,
    role: str,
    environ: Mapping[str, str] | None = None,
) -> int:
    """The whole life of a service process. ``build`` returns the bindings to serve and the
    shutdown hooks of any background workers it started (called before the pool closes)."""
    env = os.environ if environ is None else environ
    try:
        settings = load_settings(env)
    except ConfigError as exc:
        return _configuration_refused(service, exc)
    setup_logging(service, settings.log_level, env)
    setup_tracing(service, settings.trace_exporter, settings.otlp_endpoint)
    metrics_port = setup_metrics(
        service, settings.metrics_endpoint, otlp_endpoint=settings.otlp_endpoint if settings.metrics_otlp else None
    )
    try:
        db = open_database(settings, service=service, role=role)
    except ConfigError as exc:  # no DATABASE_URL: open_database is where that rule lives
        return _configuration_refused(service, exc)
    try:
        bindings, hooks = build(settings, db)
    except StartupRefused as exc:
        log.critical("refusing to start: %s", exc, extra={"event": "startup_refused", "exit_code": exc.exit_code})
        sys.stderr.write(f"{service}: refusing to start: {exc}\n")
        db.close()
        return exc.exit_code
    running = start_service(service=service, settings=settings, db=db, bindings=bindings, metrics_port=metrics_port)
    running.on_shutdown.extend(hooks)
    running.run_until_signalled()
    return 0


def _configuration_refused(service: str, exc: ConfigError) -> int:
    """Name every configuration problem on stderr; the exit code of a refused configuration."""
    for problem in exc.problems:
        sys.stderr.write(f"{service}: configuration error: {problem}\n")
    return EXIT_CONFIG
