"""The money's status lines (oraclectl status, and each cycle of make run): every figure said
once, through oraclectl/formatting.py; a cycle whose markets ended as the last table's did is one
line, not the same table again."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from oracle.budget.v1 import budget_service_pb2 as budget_pb2
from oracle.executor.v1 import executor_service_pb2 as pb
from oracle.scanner.v1 import scanner_service_pb2 as scanner_pb2
from rich.console import Console

from oraclectl.output import account_status_line, calls_left, operator_status_lines, user_status_line
from stack.console import cycle_view
from stack.cycles import BudgetLeft, CycleReport

USER = pb.UserPositions(
    user_id="demo",
    positions=[pb.Position(market="BTC-EUR", asset="BTC", quantity="0.00021")],
    realized_pnl_eur="-1.5",
    realized_today_eur="-0.5",
    unrealized_pnl_eur="2.25",
    daily_loss_eur="0.5",
    max_daily_loss_eur="20",
    drawdown_eur="1",
    max_drawdown_eur="",
    notional_today_eur="30",
    daily_notional_cap_eur="500",
    trades_today=3,
    daily_trade_cap=10,
    trades_last_hour=1,
    hourly_trade_cap=3,
    trading_state=pb.TRADING_STATE_REDUCING,
    state_reason="DAILY_LOSS_LIMIT_REACHED",
)
ACCOUNT = pb.AccountPositions(
    mode=pb.EXECUTION_MODE_LIVE,
    holdings=[pb.AssetHolding(asset="LTC", account_quantity="5", users_quantity="0", unattributed_quantity="5")],
    notional_today_eur="30",
    daily_notional_cap_eur="1000",
    daily_loss_eur="0",
    trading_state=pb.TRADING_STATE_ACTIVE,
)


def test_the_user_line_says_every_figure_once() -> None:
    usage = budget_pb2.GetUsageResponse(
        windows=[
            budget_pb2.WindowUsage(window=budget_pb2.WINDOW_DAILY_CALLS, used=3, limit=20, remaining=17),
            budget_pb2.WindowUsage(window=budget_pb2.WINDOW_HOURLY_CALLS, used=1, limit=5, remaining=4),
        ]
    )
    line = user_status_line(USER, calls_left(usage))
    assert line == (
        "demo: REDUCING (DAILY_LOSS_LIMIT_REACHED) · holds 0.00021 BTC · P&L realized -1.50 EUR (today -0.50 EUR), "
        "unrealized 2.25 EUR · daily loss 0.50 EUR of 20.00 EUR · drawdown 1.00 EUR of no limit · today 30.00 EUR "
        "of 500.00 EUR, 3/10 trades, 1/3 this hour · LLM calls left 17/20 today, 4/5 this hour"
    )


def test_the_account_line_shows_the_kill_switch_and_unattributed_coins() -> None:
    assert account_status_line(ACCOUNT, kill_switch_on=True).startswith("account (live): ACTIVE · today 30.00 EUR")
    assert "unattributed 5 LTC" in account_status_line(ACCOUNT, kill_switch_on=True)
    assert account_status_line(ACCOUNT, kill_switch_on=False).startswith("account (live): HALTED (kill switch)")


def render(report: CycleReport, same_as: int | None) -> str:
    console = Console(width=400, record=True)
    console.print(cycle_view(report, {}, same_as=same_as))
    return console.export_text()


def test_an_unchanged_cycle_is_one_line_then_the_status_lines() -> None:
    report = CycleReport(
        number=4,
        ran_at="2026-11-30 05:00:00 UTC",
        outcomes=(scanner_pb2.MarketOutcome(market="BTC-EUR", skipped_reason="HOLD"),),
        budget=BudgetLeft("17/20", "4/5"),
        exchange_orders=None,
        money=pb.GetPositionsResponse(users=[USER], account=ACCOUNT),
        operator=FIGURES,
    )
    full = render(report, same_as=None)
    assert "BTC-EUR" in full and "status demo: REDUCING" in full and "status account (live)" in full
    short = render(report, same_as=3)
    assert "the same outcome on every market as cycle 3" in short
    assert "none: HOLD" not in short and "status demo: REDUCING" in short
    assert "status executions not final: live unknown 1 (oldest 3m12s)" in short


AS_OF = Timestamp(seconds=1_796_017_800)  # 2026-11-30 05:50:00 UTC
FIGURES = pb.GetOperatorFiguresResponse(
    not_final=[
        pb.NotFinalExecutions(
            mode=pb.EXECUTION_MODE_LIVE,
            status=pb.EXECUTION_STATUS_UNKNOWN,
            executions=1,
            oldest_age=Duration(seconds=192),
        )
    ],
    reconciler=pb.ReconcilerHealth(
        last_pass_at=Timestamp(seconds=AS_OF.seconds - 45),
        last_pass_duration=Duration(seconds=2),
        last_pass_changed=0,
        last_pass_failures=1,
        passes=7,
        failures=3,
        last_failure_at=Timestamp(seconds=AS_OF.seconds - 46),
        last_failure_stage="lookup",
    ),
    exchange_weight=[
        pb.ExchangeWeight(
            client="trading key", known=True, remaining=993, resets_at=Timestamp(seconds=AS_OF.seconds + 10)
        ),
        pb.ExchangeWeight(client="public", known=False),
    ],
    as_of=AS_OF,
)


def test_the_operator_lines_say_ages_and_times_one_way() -> None:
    lines = [line.plain for line in operator_status_lines(FIGURES)]
    assert lines == [
        "executions not final: live unknown 1 (oldest 3m12s)",
        "reconciler: last pass 2026-11-30 05:49:15 UTC (45s ago), took 2s, changed 0, failures 1 · 3 failures since "
        "the executor started, latest lookup 2026-11-30 05:49:14 UTC (46s ago)",
        "exchange weight left: trading key 993 (resets 2026-11-30 05:50:10 UTC), public unknown (no answer yet)",
    ]


def test_the_operator_lines_before_anything_happened() -> None:
    quiet = pb.GetOperatorFiguresResponse(
        reconciler=pb.ReconcilerHealth(), exchange_weight=[pb.ExchangeWeight(client="public")], as_of=AS_OF
    )
    assert [line.plain for line in operator_status_lines(quiet)] == [
        "executions not final: none",
        "reconciler: no pass yet in this executor process",
        "exchange weight left: public unknown (no answer yet)",
    ]
