"""UpdateAccountSettings: the account daily notional cap lives in the database, one value for every
executor replica, changed by the operator without a redeploy.

Optimistic on the settings' version (stale → ABORTED), validated (INVALID_ARGUMENT naming the
field, nothing written), operator-only, audited in the ``_system`` trail with the old and the new
values, serialized with executions by the account lock; GetPolicy's ``account`` reads it live, and
the next claim enforces it. ``oraclectl account show|set`` drive it from the command line.

Tests share one database and so its one account settings row: each test puts the cap back.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import grpc
import pytest
from oracle.executor.v1 import executor_service_pb2 as pb
from oracle.executor.v1 import executor_service_pb2_grpc as pb_grpc

from oraclectl.__main__ import main
from services.executor.execution import Hooks
from services.executor.model import Execution
from shared.db import SYSTEM_USER
from shared.db.locks import LockSpace
from tests.harness import OPERATOR_TOKEN, SCANNER_TOKEN, VIEWER_TOKEN, Postgres, channel, eventually
from tests.integration.executor.kit import (
    Exchange,
    Executor,
    account_cap,
    failure,
    in_process_executor,
    payload,
    running_exchange,
    seed_proposal,
    storm,
    user,
    violation_types,
)
from tests.support.database_clock import DbClock

KIND = "account.settings_updated"
CAP_FIELD = "settings.daily_notional_cap_eur"


@pytest.fixture(scope="module")
def module_exchange() -> Iterator[Exchange]:
    with running_exchange() as exchange:
        yield exchange


@pytest.fixture(scope="module")
def ex(postgres: Postgres, module_exchange: Exchange) -> Iterator[Executor]:
    with in_process_executor(postgres, module_exchange.url) as executor:
        yield executor


@pytest.fixture
def restored(ex: Executor) -> Iterator[pb.AccountSettings]:
    """The settings before the test; the cap is put back after it."""
    before = ex.account()
    yield before
    ex.set_account_cap(before.daily_notional_cap_eur)


def request(cap: str, expected_version: int, **settings: Any) -> pb.UpdateAccountSettingsRequest:
    return pb.UpdateAccountSettingsRequest(
        settings=pb.AccountSettings(daily_notional_cap_eur=cap, **settings), expected_version=expected_version
    )


def stored_row(postgres: Postgres) -> dict[str, Any]:
    with postgres.admin() as conn:
        cur = conn.execute(
            "SELECT daily_notional_cap_eur, version, trading_enabled, updated_by FROM oracle.account_settings"
        )
        names = [c.name for c in cur.description or ()]
        row = cur.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


def settings_events(postgres: Postgres) -> list[dict[str, Any]]:
    """The ``_system`` trail's account.settings_updated events, oldest first (read as the superuser)."""
    with postgres.admin() as conn:
        cur = conn.execute(
            "SELECT sequence, service, principal, payload FROM oracle.audit_events"
            " WHERE user_id = %s AND kind = %s ORDER BY sequence",
            (SYSTEM_USER, KIND),
        )
        names = [c.name for c in cur.description or ()]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# ------------------------------------------------------------------ the RPC


def test_update_stores_audits_and_get_policy_reads_it_live(
    ex: Executor, postgres: Postgres, restored: pb.AccountSettings
) -> None:
    events_before = len(settings_events(postgres))
    reply = ex.operator.UpdateAccountSettings(
        # trading_enabled and version in the settings are ignored: the kill switch is SetTradingEnabled's
        request("1234.50", restored.version, trading_enabled=not restored.trading_enabled, version=999)
    )
    stored = reply.settings
    assert stored.daily_notional_cap_eur == "1234.5"
    assert stored.version == restored.version + 1
    assert stored.trading_enabled == restored.trading_enabled
    assert ex.account() == stored  # GetPolicy's account: the live cap and version, for any user
    assert ex.operator.GetPolicy(pb.GetPolicyRequest(user_id=user())).account == stored

    row = stored_row(postgres)
    assert row["daily_notional_cap_eur"] == Decimal("1234.50")
    assert row["version"] == restored.version + 1
    assert row["updated_by"] == "operator"

    events = settings_events(postgres)
    assert len(events) == events_before + 1
    event = events[-1]
    assert (event["service"], event["principal"]) == ("executor", "operator")
    old, new = event["payload"]["old"], event["payload"]["new"]
    assert Decimal(old["daily_notional_cap_eur"]) == Decimal(restored.daily_notional_cap_eur)
    assert old["version"] == restored.version
    assert new == {
        "daily_notional_cap_eur": "1234.50",
        "daily_loss_limit_eur": "",
        "trading_enabled": restored.trading_enabled,
        "version": restored.version + 1,
    }
    # the operator sees it through ListAuditEvents on the _system trail too
    assert [e for e in ex.audit(SYSTEM_USER) if e.kind == KIND][-1].principal == "operator"


def test_a_stale_version_is_aborted_and_writes_nothing(
    ex: Executor, postgres: Postgres, restored: pb.AccountSettings
) -> None:
    first = ex.operator.UpdateAccountSettings(request("900", restored.version)).settings
    row, events = stored_row(postgres), len(settings_events(postgres))
    for stale in (restored.version, first.version + 1, first.version + 100):
        report = failure(lambda stale=stale: ex.operator.UpdateAccountSettings(request("5", stale)))  # type: ignore[misc]
        assert report.code is grpc.StatusCode.ABORTED
        assert report.reason == "ACCOUNT_SETTINGS_VERSION_CONFLICT"
        assert report.metadata["stored_version"] == str(first.version)
    assert stored_row(postgres) == row
    assert len(settings_events(postgres)) == events
    assert ex.account().daily_notional_cap_eur == "900"


@pytest.mark.parametrize(
    ("cap", "why"),
    [
        ("-1", "at least 0"),
        ("-0.01", "at least 0"),
        ("abc", "decimal"),
        ("12,50", "decimal"),
        ("1.001", "at most 2 decimals"),
        ("0.005", "at most 2 decimals"),
        ("", "required"),
        ("NaN", "decimal number"),
        ("Infinity", "decimal number"),
        ("1000000000.01", "at most"),
        ("1" * 41, "too long"),
    ],
)
def test_a_bad_cap_is_invalid_argument_naming_the_field_and_writes_nothing(
    ex: Executor, postgres: Postgres, cap: str, why: str
) -> None:
    row, events, version = stored_row(postgres), len(settings_events(postgres)), ex.account().version
    report = failure(lambda: ex.operator.UpdateAccountSettings(request(cap, version)))
    assert report.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in report.field_violations] == [CAP_FIELD]
    assert why in report.field_violations[0].description
    assert stored_row(postgres) == row
    assert len(settings_events(postgres)) == events


@pytest.mark.parametrize(
    ("call", "fields"),
    [
        (pb.UpdateAccountSettingsRequest(expected_version=1), ["settings"]),
        (request("10", 0), ["expected_version"]),
        (request("10", -3), ["expected_version"]),
        (request("-10", 0), [CAP_FIELD, "expected_version"]),
    ],
    ids=["no settings", "version 0", "negative version", "both"],
)
def test_missing_settings_and_bad_versions_are_named(
    ex: Executor, postgres: Postgres, call: pb.UpdateAccountSettingsRequest, fields: list[str]
) -> None:
    row = stored_row(postgres)
    report = failure(lambda: ex.operator.UpdateAccountSettings(call))
    assert report.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in report.field_violations] == fields
    assert stored_row(postgres) == row


@pytest.mark.parametrize("token", [VIEWER_TOKEN, SCANNER_TOKEN], ids=["viewer", "scanner"])
def test_only_the_operator_may_update(ex: Executor, postgres: Postgres, token: str) -> None:
    row, events = stored_row(postgres), len(settings_events(postgres))
    with channel(ex.port, token) as chan:
        stub = pb_grpc.ExecutorServiceStub(chan)
        report = failure(lambda: stub.UpdateAccountSettings(request("1", row["version"])))
        assert report.code is grpc.StatusCode.PERMISSION_DENIED
        assert report.reason == "METHOD_NOT_ALLOWED"
        if token == VIEWER_TOKEN:  # the viewer still reads the settings
            assert stub.GetPolicy(pb.GetPolicyRequest(user_id=user())).account.version == row["version"]
    assert stored_row(postgres) == row
    assert len(settings_events(postgres)) == events


def test_concurrent_updates_of_one_version_let_exactly_one_win(
    ex: Executor, postgres: Postgres, restored: pb.AccountSettings
) -> None:
    events = len(settings_events(postgres))
    calls = [lambda i=i: ex.operator.UpdateAccountSettings(request(str(5000 + i), restored.version)) for i in range(10)]
    results = storm(calls)
    winners = [r for r in results if isinstance(r, pb.UpdateAccountSettingsResponse)]
    assert len(winners) == 1
    losers = [r for r in results if not isinstance(r, pb.UpdateAccountSettingsResponse)]
    assert len(losers) == 9 and all(getattr(r, "code", None) is grpc.StatusCode.ABORTED for r in losers)
    assert ex.account() == winners[0].settings
    assert winners[0].settings.version == restored.version + 1
    assert len(settings_events(postgres)) == events + 1


def test_the_global_kill_switch_keeps_the_cap_and_moves_the_version(ex: Executor, restored: pb.AccountSettings) -> None:
    ex.set_account_cap("777")
    read = ex.account()
    ex.kill_switch(enabled=False)
    try:
        switched = ex.account()
        assert (switched.trading_enabled, switched.daily_notional_cap_eur) == (False, "777")
        assert switched.version == read.version + 1
        # an update from before the switch is stale, and does not turn trading back on
        report = failure(lambda: ex.operator.UpdateAccountSettings(request("800", read.version)))
        assert report.code is grpc.StatusCode.ABORTED
        kept = ex.operator.UpdateAccountSettings(request("800", switched.version, trading_enabled=True)).settings
        assert (kept.trading_enabled, kept.daily_notional_cap_eur) == (False, "800")
    finally:
        ex.kill_switch(enabled=True)


def test_an_update_waits_for_executions_holding_the_account_lock(ex: Executor, postgres: Postgres) -> None:
    """Executions hold the account lock shared in their check-and-claim; the update takes it
    exclusively, so it lands between claims, never in the middle of one."""
    version = ex.account().version
    done: list[Any] = []
    with postgres.admin() as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock_shared(%s, 0)", (int(LockSpace.ACCOUNT_TRADING),))
        thread = threading.Thread(
            target=lambda: done.append(ex.operator.UpdateAccountSettings(request("4321", version), timeout=30))
        )
        thread.start()
        # wait for the update itself to queue behind the lock (not for some time to pass)
        assert eventually(lambda: _advisory_lock_waiters(postgres) >= 1)
        assert done == []  # still waiting behind the "execution"
        before = ex.account()
        assert before.version == version
    thread.join(30)  # the transaction ended: the lock is free
    try:
        assert len(done) == 1 and done[0].settings.daily_notional_cap_eur == "4321"
    finally:
        ex.set_account_cap(before.daily_notional_cap_eur)


def _advisory_lock_waiters(postgres: Postgres) -> int:
    """Sessions waiting (not yet granted) for the account-trading advisory lock."""
    with postgres.admin() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = %s",
            (int(LockSpace.ACCOUNT_TRADING),),
        ).fetchone()
    return int(row[0]) if row else 0


# ------------------------------------------------------------------ the next claim enforces it


def test_a_cap_lowered_while_executions_run_is_enforced_on_the_next_claim(
    db_clock: DbClock, postgres: Postgres, module_exchange: Exchange
) -> None:
    # A UTC day of its own (the database's clock, frozen), so other tests' executions do not count here.
    clock = db_clock(datetime(2037, 2, 3, 12, 0, tzinfo=UTC))
    alice, bob, carol = user(), user(), user()
    lowered: list[pb.AccountSettings] = []
    holder: list[Executor] = []

    def lower_once(execution: Execution) -> None:  # alice's claim committed, her order not yet sent
        if not lowered:
            lowered.append(holder[0].set_account_cap("15"))

    with (
        in_process_executor(postgres, module_exchange.url, clock=clock, hooks=Hooks(before_send=lower_once)) as own,
        account_cap(own, "1000"),
    ):
        holder.append(own)
        for uid in (alice, bob, carol):
            own.set_policy(uid)
        price = module_exchange.price("BTC-EUR")
        posts = module_exchange.post_count()

        first = own.execute(alice, seed_proposal(postgres, alice, price=price, now=clock.now()))
        assert first.status == pb.EXECUTION_STATUS_FILLED  # claimed under 1000: the claim stands
        assert [s.daily_notional_cap_eur for s in lowered] == ["15"]

        late = seed_proposal(postgres, bob, price=price, now=clock.now())
        report = own.refused(bob, late)  # 10 claimed today + 10 > 15
        assert report.code is grpc.StatusCode.FAILED_PRECONDITION
        assert violation_types(report) == ["ACCOUNT_NOTIONAL_CAP_REACHED"]
        limit = next(v for v in report.precondition_violations if v.subject == "account_notional")
        assert "15" in limit.description

        own.set_account_cap("20")  # raised: the refused proposal was not consumed
        assert own.execute(bob, late).status == pb.EXECUTION_STATUS_FILLED
        assert violation_types(own.refused(carol, seed_proposal(postgres, carol, price=price, now=clock.now()))) == [
            "ACCOUNT_NOTIONAL_CAP_REACHED"
        ]
        rejected = [e for e in own.audit(bob) if e.kind == "execution.rejected"]
        assert [r["reason"] for r in (payload(e) for e in rejected)] == ["ACCOUNT_NOTIONAL_CAP_REACHED"]
    assert module_exchange.post_count() - posts == 2


# ------------------------------------------------------------------ oraclectl account


def oraclectl(
    ex: Executor, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("ORACLE_TOKEN", OPERATOR_TOKEN)
    code = 0
    try:
        main(["--executor-addr", ex.target, *argv])
    except SystemExit as exited:
        code = int(exited.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_oraclectl_account_show_and_set(
    ex: Executor,
    restored: pb.AccountSettings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, _ = oraclectl(ex, capsys, monkeypatch, "account", "show", "--json")
    assert code == 0
    shown = json.loads(out)["settings"]
    assert shown["version"] == str(restored.version)  # int64 is a JSON string
    assert shown["daily_notional_cap_eur"] == restored.daily_notional_cap_eur

    code, out, _ = oraclectl(ex, capsys, monkeypatch, "--json", "account", "set", "--daily-notional-cap-eur", "2500")
    assert code == 0
    assert json.loads(out)["settings"] == {
        "trading_enabled": restored.trading_enabled,
        "daily_notional_cap_eur": "2500",
        "version": str(restored.version + 1),
        "daily_loss_limit_eur": "",
        "trading_state": "TRADING_STATE_ACTIVE",
        "state_reason": "",
    }
    code, out, _ = oraclectl(ex, capsys, monkeypatch, "account", "show")
    assert code == 0 and "2500" in out and f"{restored.version + 1}" in out

    code, _, err = oraclectl(ex, capsys, monkeypatch, "account", "set", "--daily-notional-cap-eur", "1.001")
    assert code == 2 and "settings.daily_notional_cap_eur" in err
    code, _, err = oraclectl(
        ex, capsys, monkeypatch, "account", "set", "--daily-notional-cap-eur", "3", "--expected-version", "1"
    )
    assert code == 9 and "ABORTED" in err
    assert ex.account().daily_notional_cap_eur == "2500"


@pytest.mark.parametrize(("races", "code"), [(1, 0), (2, 9)])
def test_oraclectl_account_set_rereads_once_after_a_concurrent_change(
    ex: Executor,
    restored: pb.AccountSettings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    races: int,
    code: int,
) -> None:
    """A concurrent change between its read and its write: it reads again and re-applies once;
    a second lost race is exit 9 (ABORTED)."""
    from oraclectl.commands import account

    real_read = account.read_settings
    reads: list[int] = []

    def read_then_lose_the_race(session: Any) -> pb.AccountSettings:
        settings = real_read(session)
        reads.append(settings.version)
        if len(reads) <= races:
            ex.set_account_cap(str(6000 + len(reads)))  # someone else writes after our read
        return settings

    monkeypatch.setattr(account, "read_settings", read_then_lose_the_race)
    exit_code, _, err = oraclectl(ex, capsys, monkeypatch, "account", "set", "--daily-notional-cap-eur", "3000")
    assert exit_code == code
    assert len(reads) == 2  # one retry, never more
    if code == 0:
        assert ex.account().daily_notional_cap_eur == "3000"
    else:
        assert "ABORTED" in err
        assert ex.account().daily_notional_cap_eur == "6002"
