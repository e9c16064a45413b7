"""Secrets are redacted from log lines; the rights table is the one authority on call rights."""

from __future__ import annotations

import io
import json
import logging

from shared import principals
from shared.logs import redact, secret_values, setup_logging


def test_secret_values_come_from_secret_variable_names() -> None:
    env = {
        "EXECUTOR_BITVAVO_API_KEY": "k" * 64,
        "EXECUTOR_BITVAVO_API_SECRET": "s" * 64,
        "EXECUTOR_PRINCIPAL_TOKENS": "operator:opertoken1234567890,scanner:scantoken1234567890",
        "EXECUTOR_LISTEN_ADDR": "127.0.0.1:5000",
    }
    values = secret_values(env)
    assert "k" * 64 in values and "s" * 64 in values
    assert "opertoken1234567890" in values and "scantoken1234567890" in values
    assert "127.0.0.1:5000" not in values


def test_redact_removes_secrets_and_url_passwords() -> None:
    text = redact("key=abcdef123456 url=postgresql://svc:hunter22@db:5432/x", ["abcdef123456"])
    assert "abcdef123456" not in text and "hunter22" not in text
    assert "postgresql://svc:***@db" in text


def test_log_lines_are_json_and_redacted(capsys: object) -> None:
    setup_logging("executor", "INFO", {"EXECUTOR_BITVAVO_API_SECRET": "topsecretvalue42"})
    stream = io.StringIO()
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
    try:
        raise RuntimeError("exchange said topsecretvalue42 was wrong")
    except RuntimeError:
        logging.getLogger("t").exception("failed with %s", "topsecretvalue42")
    line = stream.getvalue().strip()
    record = json.loads(line)
    assert record["service"] == "executor" and record["level"] == "ERROR"
    assert "topsecretvalue42" not in line


def test_rights() -> None:
    execute = "/oracle.executor.v1.ExecutorService/ExecuteProposal"
    update = "/oracle.executor.v1.ExecutorService/UpdatePolicy"
    get = "/oracle.executor.v1.ExecutorService/GetPolicy"

    def refused(name: str, method: str) -> str | None:
        return principals.refusal(principals.Principal(name), method, None)

    assert refused("operator", update) is None
    assert refused("scanner", execute) is None
    assert refused("scanner", update) == "METHOD_NOT_ALLOWED"
    assert refused("viewer", execute) == "METHOD_NOT_ALLOWED"
    assert refused("viewer", get) is None
    assert refused("stranger", get) == "METHOD_NOT_ALLOWED"


def test_token_table() -> None:
    table = principals.TokenTable({"0123456789abcdef": "operator"})
    assert table.resolve("0123456789abcdef") == "operator"
    assert table.resolve("0123456789abcdeX") is None
    assert principals.bearer((("authorization", "Bearer abc"),)) == "abc"
    assert principals.bearer((("authorization", "Basic abc"),)) is None
