"""TLS with client certificates on a real service: who gets in, and as whom.

The budget service runs in this process with TLS on (certificate, key and CA bundle in files);
clients connect with shared.channel exactly as the scanner does.
"""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from oracle.budget.v1 import budget_service_pb2 as pb

from shared.certs import Authority
from shared.config import ConfigError, ServiceSettings, load
from tests.harness import OPERATOR_TOKEN, SCANNER_TOKEN, VIEWER_TOKEN, Postgres, new_user_id
from tests.integration.budget.servers import Budget, in_process_budget
from tests.integration.trust.conftest import budget_stub, refused, usage_call
from tests.integration.trust.pki import Pki

SET_LIMITS = "/oracle.budget.v1.BudgetService/SetLimits"


def refusals(postgres: Postgres, kind: str, principal: str, method: str) -> int:
    """Refusals of ``kind`` by ``principal`` for ``method`` in the budget's _system audit chain."""
    with postgres.admin() as conn:
        row = conn.execute(
            "SELECT count(*) FROM oracle.audit_events WHERE user_id = '_system' AND service = 'budget'"
            " AND kind = %s AND principal = %s AND payload->>'method' = %s",
            (kind, principal, method),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_plaintext_client_is_refused_by_a_tls_server(tls_budget: tuple[Budget, Pki]) -> None:
    budget, pki = tls_budget
    report = usage_call(budget.port, OPERATOR_TOKEN, None, new_user_id())
    assert report is not None and report.code is grpc.StatusCode.UNAVAILABLE  # no TLS handshake, no call
    # The same call with the operator's certificate gets through: the refusal was the transport.
    assert usage_call(budget.port, OPERATOR_TOKEN, pki.party("operator"), new_user_id()) is None


def test_a_client_certificate_from_another_ca_is_refused(tls_budget: tuple[Budget, Pki]) -> None:
    budget, pki = tls_budget
    outsider = pki.party("operator", Authority("some other CA"), name="outsider")
    report = usage_call(budget.port, OPERATOR_TOKEN, outsider, new_user_id())
    assert report is not None and report.code is grpc.StatusCode.UNAVAILABLE


def test_the_scanner_certificate_with_the_operator_token_is_still_the_scanner(
    postgres: Postgres, tls_budget: tuple[Budget, Pki]
) -> None:
    budget, pki = tls_budget
    scanner = pki.party("scanner")
    user = new_user_id()
    before = refusals(postgres, "auth.permission_denied", "scanner", SET_LIMITS)
    stub, chan = budget_stub(budget.port, OPERATOR_TOKEN, scanner.files())
    limits = pb.Limits(daily_calls=1000, hourly_calls=100)
    report = refused(lambda: stub.SetLimits(pb.SetLimitsRequest(user_id=user, limits=limits), timeout=20))
    chan.close()
    assert (report.code, report.reason) == (grpc.StatusCode.PERMISSION_DENIED, "CREDENTIAL_NOT_CERTIFICATE_PRINCIPAL")
    assert refusals(postgres, "auth.permission_denied", "scanner", SET_LIMITS) == before + 1  # audited as the scanner
    assert budget.rows(user) == []
    with postgres.admin() as conn:
        assert conn.execute("SELECT count(*) FROM oracle.budget_limits WHERE user_id = %s", (user,)).fetchone() == (0,)
    # The scanner's certificate with the scanner's token: the scanner, within its rights only.
    assert usage_call(budget.port, SCANNER_TOKEN, scanner, user) is None
    stub, chan = budget_stub(budget.port, SCANNER_TOKEN, scanner.files())
    report = refused(lambda: stub.SetLimits(pb.SetLimitsRequest(user_id=user, limits=limits), timeout=20))
    chan.close()
    assert (report.code, report.reason) == (grpc.StatusCode.PERMISSION_DENIED, "METHOD_NOT_ALLOWED")
    # The operator's certificate with the scanner's token is not the scanner either.
    mismatch = usage_call(budget.port, SCANNER_TOKEN, pki.party("operator"), user)
    assert mismatch is not None and mismatch.reason == "CREDENTIAL_NOT_CERTIFICATE_PRINCIPAL"


def test_a_certificate_naming_no_principal_is_unauthenticated(tls_budget: tuple[Budget, Pki]) -> None:
    budget, pki = tls_budget
    nameless = pki.party("viewer", name="nameless", named=False)  # signed by our CA, but names nobody
    report = usage_call(budget.port, VIEWER_TOKEN, nameless, new_user_id())
    assert report is not None
    assert (report.code, report.reason) == (grpc.StatusCode.UNAUTHENTICATED, "CERTIFICATE_NAMES_NO_PRINCIPAL")


def test_the_health_port_is_plaintext_and_serves_health_only(postgres: Postgres, pki: Pki) -> None:
    server = pki.party("budget")
    with in_process_budget(postgres, health_listen_addr="127.0.0.1:0", **pki.server_settings(server)) as budget:
        running_health = _health_port_of(budget)
        with grpc.insecure_channel(f"127.0.0.1:{running_health}") as chan:
            reply = health_pb2_grpc.HealthStub(chan).Check(health_pb2.HealthCheckRequest(service=""), timeout=20)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            business = chan.unary_unary("/oracle.budget.v1.BudgetService/GetUsage")
            with pytest.raises(grpc.RpcError) as caught:
                business(b"", timeout=20)
            assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED


def _health_port_of(budget: Budget) -> int:
    assert budget.health_port is not None
    return budget.health_port


@pytest.mark.parametrize("addr", ["0.0.0.0:50053", "10.1.2.3:50053", "budget:50053", ":50053"])
def test_plaintext_off_loopback_is_refused_at_startup(addr: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(ServiceSettings, {"T_LISTEN_ADDR": addr}, "T_")
    assert "T_LISTEN_ADDR" in str(caught.value) and "not loopback" in str(caught.value)
    # A mesh that terminates TLS is an explicit, named choice.
    assert load(ServiceSettings, {"T_LISTEN_ADDR": addr, "T_TLS_TERMINATED_BY_MESH": "true"}, "T_")


@pytest.mark.parametrize("addr", ["127.0.0.1:0", "localhost:50053", "127.0.0.2:50053"])
def test_plaintext_on_loopback_is_allowed(addr: str) -> None:
    assert not load(ServiceSettings, {"T_LISTEN_ADDR": addr}, "T_").tls_enabled


def test_tls_files_come_together() -> None:
    with pytest.raises(ConfigError) as caught:
        load(ServiceSettings, {"T_TLS_CERT_FILE": "/x.crt"}, "T_")
    assert "TLS_KEY_FILE" in str(caught.value)
