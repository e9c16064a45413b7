"""User principals: a user token acts for its own user only, on every RPC of every service.

The three services run in this process, built like the real ones, with user tokens on. The
RPCs are not listed here: they are read from the services' descriptors, so an RPC added later
that takes a user id is covered without touching this file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import grpc
import jwt
import pytest
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from oracle.budget.v1 import budget_service_pb2
from oracle.executor.v1 import executor_service_pb2
from oracle.scanner.v1 import scanner_service_pb2

from shared import principals
from shared.certs import signing_key_pair
from shared.channel import open_channel
from shared.errors import ErrorReport, from_rpc_error
from tests.harness import OPERATOR_TOKEN, VIEWER_TOKEN, Postgres, new_user_id
from tests.integration.budget.servers import in_process_budget
from tests.integration.executor.kit import in_process_executor, running_exchange
from tests.integration.scanner.kit import in_process_scanner
from tests.integration.trust.conftest import usage_call
from tests.integration.trust.pki import AUDIENCE, ISSUER, Pki

SERVICES: dict[str, ServiceDescriptor] = {
    "executor": executor_service_pb2.DESCRIPTOR.services_by_name["ExecutorService"],
    "scanner": scanner_service_pb2.DESCRIPTOR.services_by_name["ScannerService"],
    "budget": budget_service_pb2.DESCRIPTOR.services_by_name["BudgetService"],
}


@dataclass
class Servers:
    ports: dict[str, int]
    pki: Pki


@pytest.fixture(scope="module")
def servers(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    pki = Pki(tmp_path_factory.mktemp("user-pki"))
    settings = pki.user_token_settings()
    with ExitStack() as stack:
        exchange = stack.enter_context(running_exchange())
        executor = stack.enter_context(in_process_executor(postgres, exchange.url, mode="paper", **settings))
        scanner = stack.enter_context(in_process_scanner(postgres, exchange.url, **settings))
        budget = stack.enter_context(in_process_budget(postgres, **settings))
        yield Servers({"executor": executor.port, "scanner": scanner.port, "budget": budget.port}, pki)


def methods_taking_a_user_id() -> list[tuple[str, MethodDescriptor]]:
    found = [
        (service, method)
        for service, descriptor in SERVICES.items()
        for method in descriptor.methods
        if principals.user_id_paths(method.input_type)
    ]
    assert len(found) >= 20  # every RPC but UpdateAccountSettings names a user
    return found


def request_for(method: MethodDescriptor, user_id: str) -> Message:
    """An otherwise empty request whose every user_id field (nested ones too) is ``user_id``."""
    request = GetMessageClass(method.input_type)()
    for path in principals.user_id_paths(method.input_type):
        target: Message = request
        for name in path[:-1]:
            target = getattr(target, name)
        setattr(target, path[-1], user_id)
    return request


def call(port: int, service: str, method: MethodDescriptor, request: Message, token: str) -> ErrorReport | None:
    full = f"/{SERVICES[service].full_name}/{method.name}"
    response_type = GetMessageClass(method.output_type)
    with open_channel(f"127.0.0.1:{port}", token) as chan:
        rpc = chan.unary_unary(
            full, request_serializer=lambda m: m.SerializeToString(), response_deserializer=response_type.FromString
        )
        try:
            rpc(request, timeout=30)
            return None
        except grpc.RpcError as exc:
            return from_rpc_error(exc)


def audited(postgres: Postgres, service: str, principal: str, method: str) -> int:
    with postgres.admin() as conn:
        row = conn.execute(
            "SELECT count(*) FROM oracle.audit_events WHERE user_id = '_system' AND service = %s"
            " AND kind = 'auth.permission_denied' AND principal = %s AND payload->>'method' = %s",
            (service, principal, method),
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize(("service", "method"), methods_taking_a_user_id(), ids=lambda v: getattr(v, "name", v))
def test_a_user_token_acting_for_another_user_is_refused_and_audited(
    servers: Servers, postgres: Postgres, service: str, method: MethodDescriptor
) -> None:
    alice, bob = new_user_id("alice"), new_user_id("bob")
    token = servers.pki.user_token(alice)
    full = f"/{SERVICES[service].full_name}/{method.name}"
    report = call(servers.ports[service], service, method, request_for(method, bob), token)
    assert report is not None and report.code is grpc.StatusCode.PERMISSION_DENIED, report
    assert report.reason in {"NOT_OWN_USER", "METHOD_NOT_ALLOWED"}
    assert audited(postgres, service, f"user:{alice}", full) == 1
    # The same request naming no user at all is not "own" either.
    if method.name in {"SetTradingEnabled", "ReconcileExecutions", "ListAuditEvents"}:
        report = call(servers.ports[service], service, method, request_for(method, ""), token)
        assert report is not None and report.code is grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("service", "method_name"),
    [
        ("executor", "GetPolicy"),
        ("executor", "ListExecutions"),
        ("executor", "ListAuditEvents"),
        ("scanner", "ListScanJobs"),
        ("scanner", "ListProposals"),
        ("budget", "GetUsage"),
    ],
)
def test_a_user_token_reads_its_own_user(servers: Servers, service: str, method_name: str) -> None:
    alice = new_user_id("alice")
    method = SERVICES[service].methods_by_name[method_name]
    assert (
        call(servers.ports[service], service, method, request_for(method, alice), servers.pki.user_token(alice)) is None
    )


def test_a_user_token_may_not_do_what_users_may_not(servers: Servers) -> None:
    alice = new_user_id("alice")
    method = SERVICES["budget"].methods_by_name["SetLimits"]  # the operator's, even for oneself
    report = call(servers.ports["budget"], "budget", method, request_for(method, alice), servers.pki.user_token(alice))
    assert report is not None and (report.code, report.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "METHOD_NOT_ALLOWED",
    )


def test_the_operator_acts_for_any_user_and_a_viewer_reads_any_user(servers: Servers) -> None:
    someone = new_user_id()
    policy = SERVICES["executor"].methods_by_name["GetPolicy"]
    for token in (OPERATOR_TOKEN, VIEWER_TOKEN):
        assert call(servers.ports["executor"], "executor", policy, request_for(policy, someone), token) is None
    kill = SERVICES["executor"].methods_by_name["SetTradingEnabled"]
    report = call(servers.ports["executor"], "executor", kill, request_for(kill, someone), VIEWER_TOKEN)
    assert report is not None and report.reason == "METHOD_NOT_ALLOWED"


def bad_tokens(pki: Pki, user: str) -> dict[str, tuple[str, str]]:
    """Tokens that must not authenticate, and the reason each is refused with."""
    now = dt.datetime.now(dt.UTC)
    other_key, _ = signing_key_pair()
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user,
        "iat": now,
        "nbf": now,
        "exp": now + dt.timedelta(minutes=5),
        "jti": "x",
    }
    return {
        "expired": (
            pki.user_token(user, now=now - dt.timedelta(minutes=10), lifetime=dt.timedelta(minutes=5)),
            "USER_TOKEN_EXPIRED",
        ),
        "wrongly signed": (pki.user_token(user, key=other_key), "USER_TOKEN_INVALID"),
        "other issuer": (pki.user_token(user, issuer="https://evil.invalid"), "USER_TOKEN_INVALID"),
        "other audience": (pki.user_token(user, audience="someone-else"), "USER_TOKEN_INVALID"),
        "not yet valid": (pki.user_token(user, now=now + dt.timedelta(minutes=10)), "USER_TOKEN_NOT_YET_VALID"),
        "too long-lived": (pki.user_token(user, lifetime=dt.timedelta(days=1)), "USER_TOKEN_TOO_LONG_LIVED"),
        "alg none": (jwt.encode(claims, "", algorithm="none"), "USER_TOKEN_INVALID"),
        "HS256 keyed with the public key": (
            jwt.encode(claims, pki.public_keys.read_bytes()[:40], algorithm="HS256"),
            "USER_TOKEN_INVALID",
        ),
        "no jti": (
            jwt.encode({k: v for k, v in claims.items() if k != "jti"}, pki.signing_key, algorithm="ES256"),
            "USER_TOKEN_INVALID",
        ),
        "not a user id": (pki.user_token("bad user id!"), "USER_TOKEN_INVALID"),
    }


def test_expired_or_wrongly_signed_user_tokens_are_unauthenticated(servers: Servers) -> None:
    user = new_user_id()
    for what, (token, reason) in bad_tokens(servers.pki, user).items():
        report = usage_call(servers.ports["budget"], token, None, user)
        assert report is not None, what
        assert (report.code, report.reason) == (grpc.StatusCode.UNAUTHENTICATED, reason), what
    assert usage_call(servers.ports["budget"], servers.pki.user_token(user), None, user) is None


def test_a_revoked_user_token_is_refused_as_soon_as_it_is_listed(servers: Servers) -> None:
    user = new_user_id()
    token = servers.pki.user_token(user, jti="revoke-me-" + user)
    assert usage_call(servers.ports["budget"], token, None, user) is None
    with servers.pki.revoked.open("a", encoding="utf-8") as out:
        out.write(f"revoke-me-{user}\n")
    report = usage_call(servers.ports["budget"], token, None, user)
    assert report is not None and (report.code, report.reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "USER_TOKEN_REVOKED",
    )
    assert usage_call(servers.ports["budget"], servers.pki.user_token(user), None, user) is None  # a fresh one works
