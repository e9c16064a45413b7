"""The rights table's two dimensions: which RPCs, and for which users."""

from __future__ import annotations

from oracle.budget.v1 import budget_service_pb2 as budget
from oracle.executor.v1 import executor_service_pb2 as executor

from shared import principals
from shared.principals import Principal

EXECUTE = "/oracle.executor.v1.ExecutorService/ExecuteProposal"
UPDATE_POLICY = "/oracle.executor.v1.ExecutorService/UpdatePolicy"
KILL = "/oracle.executor.v1.ExecutorService/SetTradingEnabled"
GET_POLICY = "/oracle.executor.v1.ExecutorService/GetPolicy"
SET_LIMITS = "/oracle.budget.v1.BudgetService/SetLimits"


def test_a_user_acts_for_its_own_user_only_including_nested_user_ids() -> None:
    alice = Principal(principals.USER, "alice")
    assert principals.refusal(alice, EXECUTE, executor.ExecuteProposalRequest(user_id="alice")) is None
    assert principals.refusal(alice, EXECUTE, executor.ExecuteProposalRequest(user_id="bob")) == "NOT_OWN_USER"
    own = executor.UpdatePolicyRequest(policy=executor.Policy(user_id="alice"))
    other = executor.UpdatePolicyRequest(policy=executor.Policy(user_id="bob"))
    assert principals.refusal(alice, UPDATE_POLICY, own) is None
    assert principals.refusal(alice, UPDATE_POLICY, other) == "NOT_OWN_USER"
    assert principals.refusal(alice, GET_POLICY, executor.GetPolicyRequest(user_id="")) == "NOT_OWN_USER"


def test_a_user_principal_without_a_user_acts_for_nobody() -> None:
    assert principals.refusal(Principal(principals.USER, ""), GET_POLICY, executor.GetPolicyRequest()) == "NOT_OWN_USER"


def test_what_users_may_not_do_even_for_themselves() -> None:
    alice = Principal(principals.USER, "alice")
    assert principals.refusal(alice, KILL, executor.SetTradingEnabledRequest(user_id="alice")) == "METHOD_NOT_ALLOWED"
    assert principals.refusal(alice, SET_LIMITS, budget.SetLimitsRequest(user_id="alice")) == "METHOD_NOT_ALLOWED"


def test_operator_scanner_and_viewer_act_for_any_user_within_their_methods() -> None:
    request = executor.ExecuteProposalRequest(user_id="bob")
    assert principals.refusal(Principal(principals.OPERATOR), EXECUTE, request) is None
    assert principals.refusal(Principal(principals.SCANNER), EXECUTE, request) is None
    assert principals.refusal(Principal(principals.VIEWER), EXECUTE, request) == "METHOD_NOT_ALLOWED"
    assert (
        principals.refusal(Principal(principals.VIEWER), GET_POLICY, executor.GetPolicyRequest(user_id="bob")) is None
    )
    assert (
        principals.refusal(Principal("stranger"), GET_POLICY, executor.GetPolicyRequest(user_id="bob"))
        == "METHOD_NOT_ALLOWED"
    )


def test_overrides_belong_to_the_operator_and_to_users() -> None:
    assert (
        principals.may_override("operator") and principals.may_override("user:alice") and principals.may_override("dev")
    )
    assert not principals.may_override("scanner") and not principals.may_override("viewer")
    assert str(Principal(principals.USER, "alice")) == "user:alice"


def test_the_account_wide_operator_figures_are_for_the_operator_and_the_viewer_only() -> None:
    figures = "/oracle.executor.v1.ExecutorService/GetOperatorFigures"
    request = executor.GetOperatorFiguresRequest()
    assert principals.refusal(Principal(principals.OPERATOR), figures, request) is None
    assert principals.refusal(Principal(principals.VIEWER), figures, request) is None
    assert principals.refusal(Principal(principals.SCANNER), figures, request) == "METHOD_NOT_ALLOWED"
    # a user principal may read, but only for its own user: a request that names no user is not its own
    assert principals.refusal(Principal(principals.USER, "alice"), figures, request) == "NOT_OWN_USER"
