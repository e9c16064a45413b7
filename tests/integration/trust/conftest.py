"""Fixtures of the trust tests: a PKI in files, and servers that read them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from oracle.budget.v1 import budget_service_pb2 as pb
from oracle.budget.v1 import budget_service_pb2_grpc as pb_grpc

from shared.channel import Credential, open_channel
from shared.errors import ErrorReport, from_rpc_error
from shared.tls import TlsFiles
from tests.harness import Postgres
from tests.integration.budget.servers import Budget, in_process_budget
from tests.integration.trust.pki import Party, Pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


@pytest.fixture
def tls_budget(postgres: Postgres, pki: Pki) -> Iterator[tuple[Budget, Pki]]:
    """A real budget server with TLS (client certificates required) and user tokens on."""
    server = pki.party("budget")
    with in_process_budget(postgres, **pki.server_settings(server)) as budget:
        yield budget, pki


def budget_stub(port: int, token: Credential, tls: TlsFiles | None) -> tuple[pb_grpc.BudgetServiceStub, grpc.Channel]:
    chan = open_channel(f"127.0.0.1:{port}", token, tls=tls)
    return pb_grpc.BudgetServiceStub(chan), chan


def usage_call(port: int, token: Credential, party: Party | None, user_id: str) -> ErrorReport | None:
    """GetUsage for ``user_id`` as the given credentials: None when it succeeded, else the error."""
    stub, chan = budget_stub(port, token, party.files() if party else None)
    try:
        stub.GetUsage(pb.GetUsageRequest(user_id=user_id), timeout=20)
        return None
    except grpc.RpcError as exc:
        return from_rpc_error(exc)
    finally:
        chan.close()


def refused(call: Callable[[], Any]) -> ErrorReport:
    try:
        call()
    except grpc.RpcError as exc:
        return from_rpc_error(exc)
    raise AssertionError("the call succeeded but was expected to be refused")
