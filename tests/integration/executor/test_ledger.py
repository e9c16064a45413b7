"""ledger.record_fills against the database: fills of several executions recorded out of fill
order (an order found late), and a fee refreshed after its fill was recorded, leave books equal
to a rebuild from the fills (docs/design.md#per-user-books)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from oracle.executor.v1 import executor_service_pb2 as pb

from services.executor import ledger
from services.executor.model import Execution, Fill
from shared.db import Database
from tests.harness import Postgres, new_user_id
from tests.integration.executor.kit import Exchange, Executor, check_books, in_process_executor, seed_proposal

T0 = datetime(2033, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(postgres: Postgres) -> Iterator[Database]:
    database = Database(postgres.url("executor"), name="ledger-test", min_size=1, max_size=2)
    database.open()
    yield database
    database.close()


def execution(postgres: Postgres, user_id: str, side: str) -> Execution:
    proposal_id, execution_id = str(uuid.uuid4()), str(uuid.uuid4())
    with postgres.admin() as conn:
        conn.execute(
            "INSERT INTO oracle.trade_proposals (proposal_id, user_id, market, side, amount_quote, confidence,"
            " analyst, model, market_snapshot, policy_snapshot, expires_at) VALUES (%s, %s, 'BTC-EUR', %s, 10, 50,"
            " 'rules', 'rules-v1', '{}', '{}', now() + interval '15 minutes')",
            (proposal_id, user_id, side),
        )
        conn.execute(
            "INSERT INTO oracle.trade_executions (execution_id, user_id, proposal_id, mode, market, side,"
            " amount_quote, status, client_order_id, principal, preflight, claimed_at, updated_at)"
            " VALUES (%s, %s, %s, 'live', 'BTC-EUR', %s, 10, 'SUBMITTED', %s, 'operator', '{}', now(), now())",
            (execution_id, user_id, proposal_id, side, str(uuid.uuid4())),
        )
    return Execution.from_row(_row(postgres, execution_id))


def _row(postgres: Postgres, execution_id: str) -> dict[str, object]:
    with postgres.admin() as conn:
        cur = conn.execute("SELECT * FROM oracle.trade_executions WHERE execution_id = %s", (execution_id,))
        names = [c.name for c in cur.description or ()]
        row = cur.fetchone()
        assert row is not None
        return dict(zip(names, row, strict=True))


def f(fill_id: str, seconds: int, amount: str, price: str, fee: str) -> Fill:
    return Fill(fill_id, Decimal(amount), Decimal(price), Decimal(fee), "EUR", True, T0 + timedelta(seconds=seconds))


def record(db: Database, e: Execution, *fills: Fill) -> int:
    with db.transaction(e.user_id) as conn:
        return ledger.record_fills(conn, e, fills, now=T0)


def book(db: Database, user_id: str) -> ledger.Position:
    with db.transaction(user_id) as conn:
        return ledger.position_of(conn, "live", "BTC-EUR")


def test_fills_found_late_and_fees_refreshed_keep_the_books_equal_to_a_rebuild(
    postgres: Postgres, db: Database
) -> None:
    uid = new_user_id("ledger")
    first, sell, late = (
        execution(postgres, uid, "buy"),
        execution(postgres, uid, "sell"),
        execution(postgres, uid, "buy"),
    )
    assert record(db, first, f("a1", 10, "1", "100", "1"), f("a2", 11, "1", "100", "1")) == 2
    assert record(db, sell, f("s1", 30, "1", "150", "1.5")) == 1
    assert book(db, uid).realized_pnl_eur == Decimal("47.5")  # 150 - 1.5 - 101
    assert record(db, first, f("a1", 10, "1", "100", "1")) == 0  # recorded before: nothing changes

    # an order found late, whose fill happened before the sell: the book is rebuilt in fill order
    assert record(db, late, f("l1", 20, "2", "50", "0")) == 1
    after = book(db, uid)
    assert after.quantity == Decimal(3)
    assert after.realized_pnl_eur == Decimal("148.5") - Decimal("75.5")  # the sell's average cost is now 302/4
    assert check_books(postgres, uid) == []

    # the fee of a recorded fill refreshed: trade_history and the book follow
    record(db, first, f("a1", 10, "1", "100", "3"))
    with db.transaction(uid) as conn:
        fee = conn.execute("SELECT fee FROM oracle.trade_history WHERE fill_id = 'a1'").fetchone()
    assert fee is not None and fee["fee"] == Decimal(3)
    refreshed = book(db, uid)
    # 2 EUR more fee: the average cost is 304/4 = 76, so the sell realized 148.5 - 76 and 3 × 76 is held
    assert (refreshed.cost_eur, refreshed.realized_pnl_eur) == (Decimal(228), Decimal("72.5"))
    assert check_books(postgres, uid) == []


def test_the_check_sees_books_that_drifted_from_the_fills(postgres: Postgres, db: Database) -> None:
    uid = new_user_id("ledger")
    buy = execution(postgres, uid, "buy")
    record(db, buy, f("b1", 1, "1", "100", "1"))
    with postgres.admin() as conn:  # a write around record_fills
        conn.execute("UPDATE oracle.book_positions SET quantity = 2 WHERE user_id = %s", (uid,))
    [difference] = check_books(postgres, uid)
    assert difference.startswith("BTC-EUR quantity: books 2.0")
    assert "rebuilt from fills 1.0" in difference


def test_fills_the_reconciler_finds_enter_the_books(postgres: Postgres, exchange: Exchange) -> None:
    """An answer lost at the exchange: the books move when the reconciler records the fills."""
    uid = new_user_id("ledger")
    with in_process_executor(postgres, exchange.url) as ex:
        ex.set_policy(uid)
        exchange.admin.drop_next_order(place=True)
        execution = ex.execute(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")))
        assert execution.status == pb.EXECUTION_STATUS_UNKNOWN
        assert positions(ex, uid) == []  # nothing recorded, nothing in the books

        assert ex.reconcile(uid).changed == 1

        settled = ex.get(uid, execution.execution_id)
        [btc] = positions(ex, uid)
        assert Decimal(btc.quantity) == Decimal(settled.filled_amount) > 0
        assert Decimal(btc.cost_eur) == Decimal(settled.filled_amount_quote) + Decimal(settled.fee_paid)
        assert check_books(postgres, uid) == []


def positions(ex: Executor, uid: str) -> list[pb.Position]:
    reply: pb.GetPositionsResponse = ex.operator.GetPositions(pb.GetPositionsRequest(user_id=uid))
    return [p for u in reply.users for p in u.positions]


def test_paper_and_live_books_are_kept_apart(postgres: Postgres, exchange: Exchange) -> None:
    uid = new_user_id("ledger")
    with (
        in_process_executor(postgres, exchange.url, mode="paper", paper_balance_eur="1000") as paper,
        in_process_executor(postgres, exchange.url) as live,
    ):
        paper.set_policy(uid)
        bought = paper.execute(uid, seed_proposal(postgres, uid, amount="50.00", price=exchange.price("BTC-EUR")))
        [btc] = positions(paper, uid)
        assert Decimal(btc.quantity) == Decimal(bought.filled_amount)
        assert positions(live, uid) == []  # the live book knows nothing of paper coins
        # and a live SELL cannot sell them
        report = live.refused(
            uid, seed_proposal(postgres, uid, side="sell", amount="10.00", price=exchange.price("BTC-EUR"))
        )
        assert "INSUFFICIENT_POSITION" in [v.type for v in report.precondition_violations]
        assert check_books(postgres, uid, mode="paper") == []
