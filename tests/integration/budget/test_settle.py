"""Settling reservations: commit records actual usage, release gives a never-made call back,
expiry keeps a reservation counting, and every refused settle changes no row."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import grpc
from oracle.budget.v1 import budget_service_pb2 as pb

from tests.harness import Postgres, eventually, new_user_id
from tests.integration.budget.servers import Budget, failure, in_process_budget


def _commit(
    budget: Budget, user: str, reservation_id: str, prompt: int, completion: int, cost: int = 0
) -> pb.Reservation:
    reply: pb.CommitCallResponse = budget.stub.CommitCall(
        pb.CommitCallRequest(
            user_id=user,
            reservation_id=reservation_id,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost_micros=cost,
        )
    )
    return reply.reservation


def _release(budget: Budget, user: str, reservation_id: str) -> pb.Reservation:
    reply: pb.ReleaseCallResponse = budget.stub.ReleaseCall(
        pb.ReleaseCallRequest(user_id=user, reservation_id=reservation_id, reason="not needed")
    )
    return reply.reservation


def test_commit_records_tokens_and_cost_and_get_usage_reports_them(budget: Budget) -> None:
    user = new_user_id("commit")
    budget.set_limits(user, daily=10, hourly=5, tokens=100_000, cost=1_000_000)
    first = budget.reserve(user, prompt=1000, max_tokens=500)
    second = budget.reserve(user, prompt=1000, max_tokens=500)

    committed = _commit(budget, user, first.reservation_id, 700, 250, cost=432)
    assert committed.status == pb.RESERVATION_STATUS_COMMITTED
    assert (committed.prompt_tokens, committed.completion_tokens, committed.cost_micros) == (700, 250, 432)
    # cost 0: computed from the model's price (gpt-4o-mini: 0.15 / 0.60 USD per million tokens).
    priced = _commit(budget, user, second.reservation_id, 1000, 500)
    assert priced.cost_micros == 1000 * 15 // 100 + 500 * 60 // 100

    usage = budget.usage(user)
    assert usage[pb.WINDOW_DAILY_CALLS].used == 2
    assert usage[pb.WINDOW_DAILY_CALLS].remaining == 8
    assert usage[pb.WINDOW_HOURLY_CALLS].used == 2
    tokens = usage[pb.WINDOW_DAILY_TOKENS]
    assert (tokens.used, tokens.limit, tokens.remaining) == (950 + 1500, 100_000, 100_000 - 2450)
    cost = usage[pb.WINDOW_DAILY_COST]
    assert (cost.used, cost.remaining, cost.unlimited) == (432 + 450, 1_000_000 - 882, False)

    rows = {r["reservation_id"]: r for r in budget.rows(user)}
    assert rows[first.reservation_id]["status"] == "committed"
    # time-ordered row ids (shared/ids.py): the usage log's key grows at its right edge
    assert uuid.UUID(first.reservation_id).version == 7 and first.reservation_id < second.reservation_id
    assert rows[first.reservation_id]["committed_at"] == budget.clock.now()


def test_a_second_commit_is_refused_and_changes_nothing(budget: Budget) -> None:
    user = new_user_id("commit")
    reservation = budget.reserve(user)
    _commit(budget, user, reservation.reservation_id, 10, 20, cost=30)
    before = budget.rows(user)

    error = failure(lambda: _commit(budget, user, reservation.reservation_id, 999, 999, cost=999))
    assert error.code is grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "RESERVATION_ALREADY_COMMITTED"
    assert budget.rows(user) == before


def test_release_stops_counting_and_is_final(budget: Budget) -> None:
    user = new_user_id("release")
    budget.set_limits(user, daily=1, hourly=1)
    reservation = budget.reserve(user)
    assert budget.refused(user).reason == "BUDGET_EXHAUSTED"

    released = _release(budget, user, reservation.reservation_id)
    assert released.status == pb.RESERVATION_STATUS_RELEASED
    assert budget.usage(user)[pb.WINDOW_DAILY_CALLS].used == 0
    before = budget.rows(user)

    again = failure(lambda: _release(budget, user, reservation.reservation_id))
    late_commit = failure(lambda: _commit(budget, user, reservation.reservation_id, 1, 1))
    assert (again.code, again.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "RESERVATION_RELEASED")
    assert (late_commit.code, late_commit.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "RESERVATION_RELEASED")
    assert budget.rows(user) == before
    budget.reserve(user)  # the released call gave its place back


def test_release_of_a_committed_reservation_is_refused(budget: Budget) -> None:
    user = new_user_id("release")
    reservation = budget.reserve(user)
    _commit(budget, user, reservation.reservation_id, 5, 5)
    before = budget.rows(user)

    error = failure(lambda: _release(budget, user, reservation.reservation_id))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "RESERVATION_ALREADY_COMMITTED")
    assert budget.rows(user) == before


def test_unknown_and_foreign_reservations_are_not_found(budget: Budget) -> None:
    owner, stranger = new_user_id("owner"), new_user_id("stranger")
    reservation = budget.reserve(owner)
    before = budget.rows(owner)

    for user, reservation_id in ((owner, str(uuid.uuid4())), (stranger, reservation.reservation_id)):
        for attempt in (
            lambda user=user, reservation_id=reservation_id: _commit(budget, user, reservation_id, 1, 1),
            lambda user=user, reservation_id=reservation_id: _release(budget, user, reservation_id),
        ):
            error = failure(attempt)
            assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "RESERVATION_NOT_FOUND")
    assert budget.rows(owner) == before


def test_audit_trail_records_every_change(budget: Budget) -> None:
    user = new_user_id("audit")
    budget.set_limits(user, daily=5, hourly=5)
    kept = budget.reserve(user)
    dropped = budget.reserve(user)
    _commit(budget, user, kept.reservation_id, 1, 2)
    _release(budget, user, dropped.reservation_id)
    with budget.postgres.admin() as conn:
        events = conn.execute(
            "SELECT kind, subject_id, principal FROM oracle.audit_events WHERE user_id = %s ORDER BY sequence",
            (user,),
        ).fetchall()
    assert events == [
        ("budget.limits_set", user, "operator"),
        ("budget.reserved", kept.reservation_id, "operator"),
        ("budget.reserved", dropped.reservation_id, "operator"),
        ("budget.committed", kept.reservation_id, "operator"),
        ("budget.released", dropped.reservation_id, "operator"),
    ]


def test_each_audit_event_carries_the_figures_its_row_holds(budget: Budget) -> None:
    """The events are written by the statements that change the rows (one round trip each), from
    the values the ledger decided: they must say exactly what the rows hold."""
    user = new_user_id("audit-figures")
    budget.set_limits(user, daily=5, hourly=5, tokens=150, cost=10_000)
    reservation = budget.reserve(user, prompt=120, max_tokens=80)  # the token limit leaves room for 30
    assert reservation.max_tokens == 30
    _commit(budget, user, reservation.reservation_id, 100, 30)  # cost computed from the price
    (row,) = budget.rows(user)
    with budget.postgres.admin() as conn:
        payloads = dict(
            conn.execute(
                "SELECT kind, payload FROM oracle.audit_events WHERE user_id = %s AND subject_id = %s",
                (user, reservation.reservation_id),
            ).fetchall()
        )
    assert payloads["budget.reserved"] == {
        "purpose": "test",
        "model": "gpt-4o-mini",
        "requested_max_tokens": 80,
        "max_tokens": row["max_tokens"],
        "estimated_tokens": row["estimated_tokens"],
        "estimated_cost_micros": row["estimated_cost_micros"],
        "expires_at": payloads["budget.reserved"]["expires_at"],
    }
    assert datetime.fromisoformat(payloads["budget.reserved"]["expires_at"]) == row["expires_at"]
    assert payloads["budget.committed"] == {
        "from_status": "reserved",
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
        "cost_micros": row["cost_micros"],
        "cost_computed": True,
        "exceeded_max_tokens": False,
        "clamped": False,
    }
    assert (row["prompt_tokens"], row["completion_tokens"], row["status"]) == (100, 30, "committed")


def test_expired_reservations_keep_counting_and_accept_a_late_commit(postgres: Postgres) -> None:
    # The real background sweeper (every 50 ms) with a one-minute TTL; time moves by the clock.
    with in_process_budget(postgres, reservation_ttl_seconds="60", sweep_interval_seconds="0.05") as budget:
        user, other = new_user_id("expire"), new_user_id("fresh")
        budget.set_limits(user, daily=2, hourly=2)
        stale = [budget.reserve(user), budget.reserve(user)]
        budget.clock.advance(timedelta(seconds=90))
        fresh = budget.reserve(other)  # reserved now: within its TTL

        assert eventually(lambda: {r["status"] for r in budget.rows(user)} == {"expired"})
        assert [r["status"] for r in budget.rows(other)] == ["reserved"]
        assert fresh.status == pb.RESERVATION_STATUS_RESERVED

        # Expired still counts: the calls may have happened.
        refused = budget.refused(user)
        assert refused.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"user:{user}/daily_calls" in {v.subject for v in refused.quota_violations}

        # The answer arrives late: accepted, and the actual usage replaces the estimate.
        late = _commit(budget, user, stale[0].reservation_id, 90, 40, cost=77)
        assert late.status == pb.RESERVATION_STATUS_COMMITTED
        tokens = budget.usage(user)[pb.WINDOW_DAILY_TOKENS].used
        assert tokens == 130 + stale[1].estimated_tokens

        # An expired reservation cannot be released: its call may have happened.
        error = failure(lambda: _release(budget, user, stale[1].reservation_id))
        assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "RESERVATION_EXPIRED")


def test_release_after_the_ttl_is_refused_even_before_the_sweep(budget: Budget) -> None:
    user = new_user_id("ttl")
    reservation = budget.reserve(user)
    budget.clock.advance(timedelta(seconds=301))  # default TTL 300 s; the sweeper is idle
    error = failure(lambda: _release(budget, user, reservation.reservation_id))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "RESERVATION_EXPIRED")
    assert [r["status"] for r in budget.rows(user)] == ["reserved"]


def test_usage_reported_above_the_reservation_is_counted_at_the_reservation_and_flagged(budget: Budget) -> None:
    """The windows were checked against the reservation: a report above it (a lying caller, an
    over-billing provider) must not push a window past its limit after the grant."""
    user = new_user_id("clamp")
    budget.set_limits(user, daily=10, hourly=10, tokens=400, cost=200)
    reservation = budget.reserve(user, prompt=100, max_tokens=200)
    assert (reservation.estimated_tokens, reservation.estimated_cost_micros) == (300, 135)

    committed = _commit(budget, user, reservation.reservation_id, 5000, 7000, cost=9_999_999)
    assert committed.status == pb.RESERVATION_STATUS_COMMITTED
    assert (committed.prompt_tokens, committed.completion_tokens, committed.cost_micros) == (300, 0, 135)
    usage = budget.usage(user)
    assert usage[pb.WINDOW_DAILY_TOKENS].used == 300 <= usage[pb.WINDOW_DAILY_TOKENS].limit
    assert usage[pb.WINDOW_DAILY_COST].used == 135 <= usage[pb.WINDOW_DAILY_COST].limit

    with budget.postgres.admin() as conn:
        (payload,) = (
            r[0]
            for r in conn.execute(
                "SELECT payload FROM oracle.audit_events WHERE kind = 'budget.committed' AND subject_id = %s",
                (reservation.reservation_id,),
            )
        )
    assert payload["clamped"] is True
    assert payload["reported"] == {"prompt_tokens": 5000, "completion_tokens": 7000, "cost_micros": 9_999_999}

    # A report within the reservation is stored as it is, unflagged.
    second = budget.reserve(user, prompt=10, max_tokens=20)
    honest = _commit(budget, user, second.reservation_id, 10, 20, cost=5)
    assert (honest.prompt_tokens, honest.completion_tokens, honest.cost_micros) == (10, 20, 5)
