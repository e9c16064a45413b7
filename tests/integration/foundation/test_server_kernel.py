"""The server kernel fails closed and the pool pins what the guarantees rely on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from shared.config import ServiceSettings, load
from shared.db import Database
from shared.server import RefusalAuditLimit, ServiceBinding, create_server
from tests.harness import OPERATOR_TOKEN, PRINCIPAL_TOKENS, Postgres, channel


def test_a_streaming_rpc_is_refused_not_served_unauthenticated() -> None:
    served: list[Any] = []

    def stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        served.append(request)
        yield b"secret data"

    handler = grpc.method_handlers_generic_handler(
        "test.v1.Streamer", {"Stream": grpc.unary_stream_rpc_method_handler(stream)}
    )
    settings = load(ServiceSettings, {"T_PRINCIPAL_TOKENS": PRINCIPAL_TOKENS}, "T_")
    running = create_server(
        service="test",
        bindings=[ServiceBinding("test.v1.Streamer", lambda s: s.add_generic_rpc_handlers((handler,)))],
        settings=settings,
        db=None,
    )
    try:
        for token in (None, OPERATOR_TOKEN):
            call = channel(running.port, token).unary_stream("/test.v1.Streamer/Stream")
            with pytest.raises(grpc.RpcError) as caught:
                list(call(b"x", timeout=5))
            assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
        assert served == []
    finally:
        running.shutdown()


def test_transactions_are_read_committed_whatever_the_server_default(private_postgres: Postgres) -> None:
    with private_postgres.admin() as conn:
        conn.execute("ALTER ROLE oracle_budget SET default_transaction_isolation = 'repeatable read'")
    db = Database(private_postgres.url("budget"), name="isolation-test", min_size=1, max_size=1)
    db.open()
    try:
        with db.transaction("alice") as conn:
            row = conn.execute("SELECT current_setting('transaction_isolation') AS level").fetchone()
        assert row == {"level": "read committed"}
    finally:
        db.close()


def test_refusal_audit_limit_counts_what_it_skips() -> None:
    now = [0.0]
    limit = RefusalAuditLimit(burst=3, per_second=1.0, clock=lambda: now[0])
    assert [limit.admit() for _ in range(5)] == [0, 0, 0, None, None]
    now[0] += 1.0  # one token back
    assert limit.admit() == 2  # written, carrying the two skipped before it
    assert limit.admit() is None
    now[0] += 10.0
    assert [limit.admit() for _ in range(4)] == [1, 0, 0, None]  # refilled to the burst, no more


def test_a_flood_of_bad_calls_is_refused_but_not_written_one_by_one() -> None:
    written: list[dict[str, Any]] = []
    settings = load(ServiceSettings, {"T_PRINCIPAL_TOKENS": PRINCIPAL_TOKENS}, "T_")
    handler = grpc.method_handlers_generic_handler(
        "test.v1.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(lambda r, c: r)}
    )
    running = create_server(
        service="test",
        bindings=[ServiceBinding("test.v1.Echo", lambda s: s.add_generic_rpc_handlers((handler,)))],
        settings=settings,
        db=None,
        audit=lambda kind, principal, payload: written.append(payload),
    )
    try:
        call = channel(running.port, "not-a-token-0123456789").unary_unary("/test.v1.Echo/Echo")
        codes = set()
        for _ in range(200):
            with pytest.raises(grpc.RpcError) as caught:
                call(b"x", timeout=5)
            codes.add(caught.value.code())
        assert codes == {grpc.StatusCode.UNAUTHENTICATED}
        assert 20 <= len(written) < 200  # the burst is written, the flood is counted instead
        assert call_ok(channel(running.port, OPERATOR_TOKEN).unary_unary("/test.v1.Echo/Echo"))
    finally:
        running.shutdown()


def call_ok(call: Any) -> bool:
    return bool(call(b"ping", timeout=5) == b"ping")
