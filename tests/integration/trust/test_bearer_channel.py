"""shared.channel.open_channel sends the bearer credential on every unary call, whichever way
the call is made (blocking, with_call, future), after the caller's own metadata, and reads a
rotating credential at each call. The server here is a plain gRPC server that answers with the
metadata it received (nothing of ours on that side)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from shared.channel import open_channel

METHOD = "/test.Echo/Metadata"


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    pairs = [f"{key}={value}" for key, value in context.invocation_metadata() if not key.startswith(("grpc-", ":"))]
    return "\n".join(pairs).encode()


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.method_handlers_generic_handler(
        "test.Echo", {"Metadata": grpc.unary_unary_rpc_method_handler(_echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(0).wait()


def received(answer: bytes) -> list[str]:
    return [p for p in answer.decode().split("\n") if not p.startswith("user-agent=")]


def test_every_way_of_calling_carries_the_credential_after_the_callers_metadata(echo_port: int) -> None:
    with open_channel(f"127.0.0.1:{echo_port}", "fixed-token-0123456789") as channel:
        call: Any = channel.unary_unary(METHOD)
        mine = (("x-request-id", "r-1"),)
        expected = ["x-request-id=r-1", "authorization=Bearer fixed-token-0123456789"]
        assert received(call(b"", timeout=30, metadata=mine)) == expected
        assert received(call(b"", 30, mine)) == expected  # metadata passed by position
        answer, outcome = call.with_call(b"", timeout=30, metadata=mine)
        assert received(answer) == expected and outcome.code() is grpc.StatusCode.OK
        assert received(call.future(b"", timeout=30, metadata=mine).result()) == expected
        assert received(call(b"", timeout=30)) == expected[1:]


def test_a_rotating_credential_is_read_at_each_call(echo_port: int) -> None:
    tokens = iter(["first-token-0123456789", "second-token-0123456789"])
    with open_channel(f"127.0.0.1:{echo_port}", lambda: next(tokens)) as channel:
        call: Any = channel.unary_unary(METHOD)
        assert received(call(b"", timeout=30)) == ["authorization=Bearer first-token-0123456789"]
        assert received(call(b"", timeout=30)) == ["authorization=Bearer second-token-0123456789"]
