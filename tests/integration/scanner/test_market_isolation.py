"""One market never sinks the others: whatever goes wrong for one market of a run — its analyst
raises, answers an idea no proposal may carry, or the database refuses its row — is that market's
skipped reason, and the run's other proposals, its rescheduling and its audit record commit.

Scheduled runs go through ``Scheduler.run_once`` on a database of this module's own (the claim is
across users: no other test's job may be due there); on-demand runs through RunScan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.scanner import scan
from services.scanner.analyst import AnalysisRequest, Decision, RuleAnalyst, TradeIdea
from shared.db.embedded import EmbeddedCluster
from shared.db.migrate import migrate
from tests.harness import Postgres, new_user_id
from tests.integration.scanner.kit import (
    Exchange,
    assembled,
    in_process_scanner,
    insert_due_job,
    proposals_of,
    rows,
    scan_runs,
    seed_policy,
)

MARKETS = ["BTC-EUR", "ETH-EUR", "SOL-EUR"]
BAD = "ETH-EUR"

Twist = Callable[[Decision], Decision]


class TwistedFor:
    """The rule analyst, except that one market's decision is twisted (or raises)."""

    def __init__(self, market: str, twist: Twist) -> None:
        self._inner = RuleAnalyst()
        self._market = market
        self._twist = twist

    @property
    def kind(self) -> str:
        return "rules"

    def analyse(self, request: AnalysisRequest) -> Decision:
        decision = self._inner.analyse(request)
        return self._twist(decision) if request.snapshot.market == self._market else decision


def raises(decision: Decision) -> Decision:
    raise RuntimeError("the analyst broke on this market")


def not_a_decision(decision: Decision) -> Decision:
    return None  # type: ignore[return-value]  # what a buggy analyst might answer


def idea(decision: Decision, **changes: object) -> Decision:
    assert isinstance(decision, TradeIdea), decision
    return replace(decision, **changes)  # type: ignore[arg-type]


TWISTS: Mapping[str, tuple[Twist, str]] = {
    "raises": (raises, "ANALYST_ERROR"),
    "huge_amount": (lambda d: idea(d, amount_eur=Decimal("1E+30")), "INVALID_IDEA"),
    "nan_amount": (lambda d: idea(d, amount_eur=Decimal("NaN")), "INVALID_IDEA"),
    "sub_cent_amount": (lambda d: idea(d, amount_eur=Decimal("0.004")), "INVALID_IDEA"),
    "bad_side": (lambda d: idea(d, side="hold"), "INVALID_IDEA"),
    "not_a_decision": (not_a_decision, "INVALID_IDEA"),
}

# What the database itself refuses, with the analyst output check switched off: the savepoint.
REFUSED_ROWS: Mapping[str, Twist] = {
    "overflowing_amount": lambda d: idea(d, amount_eur=Decimal("1E+30")),
    "nul_in_model": lambda d: idea(d, model="rules\x00v1"),
    "surrogate_in_rationale": lambda d: idea(d, rationale="up \ud800"),
    "nul_in_indicator": lambda d: idea(d, indicators={"gap": "1\x00"}),
    "side_check": lambda d: idea(d, side="hold"),
    "confidence_check": lambda d: idea(d, confidence=30),
}


@pytest.fixture(scope="module")
def module_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """A migrated cluster for this module alone; each run here leaves its job an hour away."""
    cluster = EmbeddedCluster(tmp_path_factory.mktemp("isolation") / "pgdata")
    url = cluster.start()
    migrate(url)
    yield Postgres(url, cluster)
    cluster.stop()


@pytest.fixture
def pg(module_postgres: Postgres, exchange: Exchange) -> Iterator[Postgres]:
    for market in MARKETS:
        exchange.trend_up(market)  # the rule analyst proposes a buy on every market
    yield module_postgres


def run_scheduled(pg: Postgres, exchange: Exchange, twist: Twist) -> tuple[str, str]:
    """One scheduled run of a job on MARKETS with BAD twisted: (user, job_id)."""
    user = new_user_id("iso")
    seed_policy(pg, user)
    job_id = insert_due_job(pg, user, MARKETS, due=datetime.now(UTC) - timedelta(seconds=1))
    with assembled(pg, exchange.url, analysts={"rules": TwistedFor(BAD, twist)}) as scanner:
        assert scanner.scheduler.run_once() == 1
    return user, job_id


def assert_only_bad_skipped(pg: Postgres, user: str, job_id: str, reason: str) -> None:
    assert [r for r in scan_runs(pg, "scan.failed") if r["job_id"] == job_id] == [], "the whole run failed"
    (run,) = [r for r in scan_runs(pg) if r["job_id"] == job_id]
    assert [(o["market"], o.get("skipped_reason")) for o in run["outcomes"]] == [
        ("BTC-EUR", None),
        (BAD, reason),
        ("SOL-EUR", None),
    ]
    assert sorted(p["market"] for p in proposals_of(pg, user)) == ["BTC-EUR", "SOL-EUR"]
    (job,) = rows(pg, "SELECT * FROM oracle.scan_jobs WHERE job_id = %s", job_id)
    assert job["attempts"] == 0 and job["last_error"] == ""
    assert job["locked_by"] is None
    assert job["next_run_at"] > datetime.now(UTC) + timedelta(minutes=59)  # rescheduled, no back-off
    assert [o.get("skipped_reason") for o in job["last_outcomes"]] == [None, reason, None]
    created = rows(
        pg, "SELECT count(*) AS n FROM oracle.audit_events WHERE user_id = %s AND kind = 'proposal.created'", user
    )
    assert created[0]["n"] == 2


@pytest.mark.parametrize("case", sorted(TWISTS))
def test_one_markets_bad_analysis_is_its_reason_and_the_others_are_written(
    pg: Postgres, exchange: Exchange, case: str
) -> None:
    twist, reason = TWISTS[case]
    user, job_id = run_scheduled(pg, exchange, twist)
    assert_only_bad_skipped(pg, user, job_id, reason)


@pytest.mark.parametrize("case", sorted(REFUSED_ROWS))
def test_a_row_the_database_refuses_is_that_markets_reason_and_the_others_are_written(
    pg: Postgres, exchange: Exchange, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    monkeypatch.setattr(scan, "storable", lambda decision: decision)  # only the savepoint is left
    user, job_id = run_scheduled(pg, exchange, REFUSED_ROWS[case])
    assert_only_bad_skipped(pg, user, job_id, "PROPOSAL_NOT_STORED")


def test_an_on_demand_scan_answers_every_market_when_one_breaks(postgres: Postgres, exchange: Exchange) -> None:
    for market in MARKETS:
        exchange.trend_up(market)
    user = new_user_id("isodemand")
    seed_policy(postgres, user)
    with in_process_scanner(postgres, exchange.url, analysts={"rules": TwistedFor(BAD, raises)}) as scanner:
        reply = scanner.run(user, MARKETS)  # OK, not INTERNAL
    assert [(o.market, o.skipped_reason) for o in reply.outcomes] == [
        ("BTC-EUR", ""),
        (BAD, "ANALYST_ERROR"),
        ("SOL-EUR", ""),
    ]
    assert sorted(p.market for p in reply.proposals) == ["BTC-EUR", "SOL-EUR"]
    assert sorted(p["market"] for p in proposals_of(postgres, user)) == ["BTC-EUR", "SOL-EUR"]
