"""The money view through ``oraclectl --json``: GetPositions (per user books at current prices,
the account's unattributed coins, the books check), ``oraclectl status`` and ``oraclectl state``
(docs/design.md#per-user-books)."""

from __future__ import annotations

import json
from decimal import Decimal

import grpc
import pytest
from oracle.executor.v1 import executor_service_pb2 as pb

from oraclectl.__main__ import main
from tests.harness import OPERATOR_TOKEN, Postgres
from tests.integration.executor.kit import Exchange, Executor, failure, in_process_executor, seed_proposal, user


def oraclectl(
    ex: Executor, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("ORACLE_TOKEN", OPERATOR_TOKEN)
    code = 0
    try:
        main(["--executor-addr", ex.target, "--budget-addr", "127.0.0.1:1", *argv])
    except SystemExit as exited:
        code = int(exited.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_get_positions_through_oraclectl_json(
    private_postgres: Postgres,
    exchange: Exchange,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a database of its own: the account's holdings are this test's users' only
    postgres = private_postgres
    uid = user()
    exchange.admin.set_balance("BTC", "2")  # coins on the account that no user bought
    with in_process_executor(postgres, exchange.url) as ex:
        ex.set_policy(uid, max_daily_loss_eur="50")
        price = exchange.price("BTC-EUR")
        bought = [ex.execute(uid, seed_proposal(postgres, uid, amount=a, price=price)) for a in ("30.00", "20.00")]
        sold = ex.execute(uid, seed_proposal(postgres, uid, side="sell", amount="10.00", price=price))
        held = sum((Decimal(b.filled_amount) for b in bought), Decimal(0)) - Decimal(sold.filled_amount)
        cost = sum((Decimal(b.filled_amount_quote) + Decimal(b.fee_paid) for b in bought), Decimal(0))

        code, out, _ = oraclectl(ex, capsys, monkeypatch, "--json", "positions", "--user", uid, "--check")

        assert code == 0
        reply = json.loads(out)
        [mine] = reply["users"]
        assert mine["user_id"] == uid
        [btc] = mine["positions"]
        assert (btc["market"], btc["asset"]) == ("BTC-EUR", "BTC")
        assert Decimal(btc["quantity"]) == held
        assert btc["fills"] != "0"
        # average cost, fees included, kept through the sell
        assert Decimal(btc["average_cost_eur"]) == pytest.approx(cost / sum(Decimal(b.filled_amount) for b in bought))
        assert Decimal(btc["unrealized_pnl_eur"]) == pytest.approx(
            held * Decimal(btc["price_eur"]) - Decimal(btc["cost_eur"])
        )
        assert mine["books_check"] == {"consistent": True, "differences": []}
        assert mine["trading_state"] == "TRADING_STATE_ACTIVE"
        assert mine["max_daily_loss_eur"] == "50" and mine["max_drawdown_eur"] == ""
        assert (mine["trades_today"], mine["daily_trade_cap"]) == (3, 1000)
        assert Decimal(mine["notional_today_eur"]) == Decimal(60)
        # the account holds more than the users' books: the rest is unattributed
        [holding] = [h for h in reply["account"]["holdings"] if h["asset"] == "BTC"]
        assert Decimal(holding["users_quantity"]) == held
        assert Decimal(holding["unattributed_quantity"]) == Decimal(holding["account_quantity"]) - Decimal(
            holding["users_quantity"]
        )
        assert Decimal(holding["account_quantity"]) == exchange.admin.available("BTC")

        code, out, _ = oraclectl(ex, capsys, monkeypatch, "positions", "--user", uid)
        assert code == 0 and uid in out and "unattributed" in out

        code, out, _ = oraclectl(ex, capsys, monkeypatch, "status", "--user", uid)
        assert code == 0
        assert f"{uid}: ACTIVE" in out and "daily loss" in out and "LLM calls left unknown" in out
        assert "account (live): ACTIVE" in out

        code, out, _ = oraclectl(ex, capsys, monkeypatch, "--json", "state", "reducing", "--user", uid, "--reason", "t")
        assert code == 0 and json.loads(out)["state"] == "TRADING_STATE_REDUCING"
        code, out, _ = oraclectl(ex, capsys, monkeypatch, "status", "--user", uid)
        assert f"{uid}: REDUCING (t)" in out
        refused = ex.refused(uid, seed_proposal(postgres, uid, amount="10.00", price=exchange.price("BTC-EUR")))
        assert [v.type for v in refused.precondition_violations] == ["USER_REDUCING"]
        code, out, _ = oraclectl(ex, capsys, monkeypatch, "--json", "state", "active", "--user", uid)
        assert code == 0 and json.loads(out)["previous"] == "TRADING_STATE_REDUCING"


def test_bad_input_is_invalid_argument_naming_the_field(postgres: Postgres, exchange: Exchange) -> None:
    with in_process_executor(postgres, exchange.url) as ex:
        report = failure(lambda: ex.operator.GetPositions(pb.GetPositionsRequest(user_id="bad user!")))
        assert report.code is grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in report.field_violations] == ["user_id"]
        report = failure(
            lambda: ex.operator.SetTradingState(
                pb.SetTradingStateRequest(
                    scope=pb.KILL_SWITCH_SCOPE_USER, user_id=user(), state=pb.TRADING_STATE_HALTED
                )
            )
        )
        assert report.code is grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in report.field_violations] == ["state"]
        report = failure(
            lambda: ex.operator.UpdatePolicy(
                pb.UpdatePolicyRequest(policy=_policy_with(max_drawdown_eur="-1"), expected_version=0)
            )
        )
        assert report.code is grpc.StatusCode.INVALID_ARGUMENT
        assert "policy.max_drawdown_eur" in [v.field for v in report.field_violations]


def _policy_with(**changes: str) -> pb.Policy:
    from tests.integration.executor.kit import permissive_policy

    return permissive_policy(user(), **changes)
