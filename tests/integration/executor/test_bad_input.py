"""Malformed requests: INVALID_ARGUMENT naming the field, never UNKNOWN or INTERNAL, nothing written."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from oracle.executor.v1 import executor_service_pb2 as pb

from tests.harness import Postgres
from tests.integration.executor.kit import (
    Exchange,
    Executor,
    failure,
    in_process_executor,
    payload,
    permissive_policy,
    running_exchange,
    seed_proposal,
    user,
)

UID = "bad-input-user"
PID = "0b6c4e2a-1f3d-4c5b-9a8e-7d6f5e4c3b2a"
HUGE = "x" * 200_000

Call = Callable[[Executor], Any]


def execute(**fields: Any) -> Call:
    request = pb.ExecuteProposalRequest(**{"user_id": UID, "proposal_id": PID, **fields})
    return lambda ex: ex.operator.ExecuteProposal(request)


def update(expected_version: int = 0, **fields: Any) -> Call:
    policy = permissive_policy(fields.pop("user_id", UID), **fields)
    request = pb.UpdatePolicyRequest(policy=policy, expected_version=expected_version)
    return lambda ex: ex.operator.UpdatePolicy(request)


def account(cap: str, expected_version: int = 1) -> Call:
    request = pb.UpdateAccountSettingsRequest(
        settings=pb.AccountSettings(daily_notional_cap_eur=cap), expected_version=expected_version
    )
    return lambda ex: ex.operator.UpdateAccountSettings(request)


def kill_switch(**fields: Any) -> Call:
    request = pb.SetTradingEnabledRequest(**{"scope": pb.KILL_SWITCH_SCOPE_GLOBAL, "enabled": False, **fields})
    return lambda ex: ex.operator.SetTradingEnabled(request)


CASES: list[tuple[str, Call, str]] = [
    ("execute: empty user", execute(user_id=""), "user_id"),
    ("execute: malformed user", execute(user_id="no spaces allowed"), "user_id"),
    ("execute: huge user", execute(user_id=HUGE), "user_id"),
    ("execute: empty proposal", execute(proposal_id=""), "proposal_id"),
    ("execute: malformed proposal", execute(proposal_id="not-a-uuid"), "proposal_id"),
    ("execute: huge proposal", execute(proposal_id=HUGE), "proposal_id"),
    ("execute: huge override reason", execute(override_reason=HUGE), "override_reason"),
    ("execute: NUL in override reason", execute(override_reason="a\x00b"), "override_reason"),
    (
        "get execution: malformed id",
        lambda ex: ex.operator.GetExecution(pb.GetExecutionRequest(user_id=UID, execution_id="42")),
        "execution_id",
    ),
    (
        "get execution: empty user",
        lambda ex: ex.operator.GetExecution(pb.GetExecutionRequest(execution_id=PID)),
        "user_id",
    ),
    (
        "list executions: page size",
        lambda ex: ex.operator.ListExecutions(pb.ListExecutionsRequest(user_id=UID, page_size=-1)),
        "page_size",
    ),
    (
        "list executions: page token",
        lambda ex: ex.operator.ListExecutions(pb.ListExecutionsRequest(user_id=UID, page_token="garbage!")),
        "page_token",
    ),
    (
        "list executions: unknown status",
        lambda ex: ex.operator.ListExecutions(pb.ListExecutionsRequest(user_id=UID, status=99)),  # type: ignore[arg-type]
        "status",
    ),
    (
        "reconcile: malformed user",
        lambda ex: ex.operator.ReconcileExecutions(pb.ReconcileExecutionsRequest(user_id="-leading-dash")),
        "user_id",
    ),
    ("get policy: empty user", lambda ex: ex.operator.GetPolicy(pb.GetPolicyRequest()), "user_id"),
    ("update: no policy", lambda ex: ex.operator.UpdatePolicy(pb.UpdatePolicyRequest()), "policy"),
    ("update: malformed user", update(user_id="bad user"), "policy.user_id"),
    ("update: min above max", update(min_order_eur="50", max_order_eur="10"), "policy.max_order_eur"),
    ("update: negative minimum", update(min_order_eur="-1"), "policy.min_order_eur"),
    ("update: not a number", update(max_order_eur="ten"), "policy.max_order_eur"),
    ("update: huge amount string", update(max_order_eur=HUGE), "policy.max_order_eur"),
    ("update: too many decimals", update(daily_notional_cap_eur="1.001"), "policy.daily_notional_cap_eur"),
    ("update: negative daily cap", update(daily_trade_cap=-1), "policy.daily_trade_cap"),
    ("update: negative hourly cap", update(hourly_trade_cap=-5), "policy.hourly_trade_cap"),
    ("update: negative cooldown", update(cooldown=Duration(seconds=-1)), "policy.cooldown"),
    ("update: fractional anti-flip", update(anti_flip_window=Duration(nanos=5)), "policy.anti_flip_window"),
    ("update: int64-max cooldown", update(cooldown=Duration(seconds=2**63 - 1)), "policy.cooldown"),
    ("update: int64-min anti-flip", update(anti_flip_window=Duration(seconds=-(2**63))), "policy.anti_flip_window"),
    ("update: Arabic-Indic digits", update(max_order_eur="\u0661\u0660\u0660"), "policy.max_order_eur"),
    ("update: underscore digits", update(daily_notional_cap_eur="1_000"), "policy.daily_notional_cap_eur"),
    ("update: padded amount", update(min_order_eur=" 5 "), "policy.min_order_eur"),
    ("update: huge exponent", update(price_guard_pct="1e999999"), "policy.price_guard_pct"),
    ("account: full-width digits", account("\uff11\uff10"), "settings.daily_notional_cap_eur"),
    ("update: confidence", update(min_confidence=33), "policy.min_confidence"),
    ("update: price guard", update(price_guard_pct="100.5"), "policy.price_guard_pct"),
    ("update: malformed market", update(allowed_markets=["btc-eur"]), "policy.allowed_markets[0]"),
    ("update: market twice", update(allowed_markets=["BTC-EUR", "BTC-EUR"]), "policy.allowed_markets"),
    ("update: negative version", update(expected_version=-1), "expected_version"),
    ("account: negative cap", account("-1"), "settings.daily_notional_cap_eur"),
    ("account: cap not a number", account("lots"), "settings.daily_notional_cap_eur"),
    ("account: cap with 3 decimals", account("1.001"), "settings.daily_notional_cap_eur"),
    ("account: huge cap string", account(HUGE), "settings.daily_notional_cap_eur"),
    ("account: no version", account("10", expected_version=0), "expected_version"),
    (
        "account: no settings",
        lambda ex: ex.operator.UpdateAccountSettings(pb.UpdateAccountSettingsRequest(expected_version=1)),
        "settings",
    ),
    ("kill switch: unspecified scope", kill_switch(scope=pb.KILL_SWITCH_SCOPE_UNSPECIFIED), "scope"),
    ("kill switch: user scope without user", kill_switch(scope=pb.KILL_SWITCH_SCOPE_USER), "user_id"),
    ("kill switch: global scope with a user", kill_switch(user_id=UID), "user_id"),
    ("kill switch: huge reason", kill_switch(reason=HUGE), "reason"),
    (
        "audit: page size",
        lambda ex: ex.operator.ListAuditEvents(pb.ListAuditEventsRequest(user_id=UID, page_size=1001)),
        "page_size",
    ),
    (
        "audit: page token",
        lambda ex: ex.operator.ListAuditEvents(pb.ListAuditEventsRequest(user_id=UID, page_token="eyJzIjogLTF9")),
        "page_token",
    ),
    (
        "audit: huge subject",
        lambda ex: ex.operator.ListAuditEvents(pb.ListAuditEventsRequest(user_id=UID, subject_id=HUGE)),
        "subject_id",
    ),
]


@pytest.fixture(scope="module")
def ex(postgres: Postgres) -> Iterator[Executor]:
    with running_exchange() as exchange, in_process_executor(postgres, exchange.url) as executor:
        yield executor


@pytest.mark.parametrize(("call", "field"), [(c, f) for _, c, f in CASES], ids=[name for name, _, _ in CASES])
def test_invalid_argument_names_the_field(ex: Executor, postgres: Postgres, call: Call, field: str) -> None:
    report = failure(lambda: call(ex))
    assert report.code is grpc.StatusCode.INVALID_ARGUMENT
    assert field in [v.field for v in report.field_violations]


def test_several_bad_fields_are_named_at_once(ex: Executor) -> None:
    report = failure(lambda: ex.operator.ExecuteProposal(pb.ExecuteProposalRequest(user_id="", proposal_id="x")))
    assert report.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in report.field_violations] == ["user_id", "proposal_id"]


def test_nothing_was_written(ex: Executor, postgres: Postgres) -> None:
    account_query = "SELECT daily_notional_cap_eur, version FROM oracle.account_settings"
    with postgres.admin() as conn:
        account_before = conn.execute(account_query).fetchone()
    for _, call, _ in CASES:
        failure(lambda call=call: call(ex))  # type: ignore[misc]
    with postgres.admin() as conn:
        assert conn.execute(account_query).fetchone() == account_before
        for table in ("trade_executions", "trading_policies", "audit_events"):
            row = conn.execute(f"SELECT count(*) FROM oracle.{table} WHERE user_id = %s", (UID,)).fetchone()
            assert row is not None and row[0] == 0, table
        enabled = conn.execute("SELECT trading_enabled FROM oracle.account_settings").fetchone()
        assert enabled is not None and enabled[0] is True


def test_unexpected_exchange_trouble_is_unavailable_not_internal(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url) as executor:
        executor.set_policy(uid)
        pid = seed_proposal(postgres, uid, price=exchange.price("BTC-EUR"))
        exchange.admin.fail_next_request("/balance", 107, count=5)
        report = executor.refused(uid, pid)
        assert report.code is grpc.StatusCode.UNAVAILABLE
        assert report.reason == "EXCHANGE_UNAVAILABLE"
        assert exchange.post_count() == 0
        attempt = executor.audit(uid)[-1]
        assert (attempt.kind, payload(attempt)["reason"]) == ("execution.rejected", "EXCHANGE_UNAVAILABLE")
        assert executor.execute(uid, pid).status == pb.EXECUTION_STATUS_FILLED  # nothing was consumed
