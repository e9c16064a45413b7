"""recent.Recent: the one reuse rule of the executor's short caches (paper prices, marks, balances)."""

from __future__ import annotations

from services.executor.recent import Recent


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_value_is_reused_while_younger_than_its_age_then_read_again() -> None:
    clock = Clock()
    recent: Recent[str, int] = Recent(1.0, clock=clock)
    reads: list[int] = []

    def read() -> int:
        reads.append(len(reads) + 1)
        return reads[-1]

    assert recent.get("BTC-EUR", read) == 1
    clock.now += 0.999
    assert recent.get("BTC-EUR", read) == 1
    clock.now += 0.001  # exactly as old as allowed: too old
    assert recent.get("BTC-EUR", read) == 2
    assert reads == [1, 2]


def test_age_counts_from_the_ask_and_an_older_reading_never_replaces_a_newer_one() -> None:
    clock = Clock()
    recent: Recent[str, str] = Recent(10.0, clock=clock)

    def slow() -> str:
        clock.now += 5  # the answer took 5 s: the value is 5 s old when it arrives
        recent.remember("k", "newer", asked_at=clock.now)  # someone else's newer reading meanwhile
        return "older"

    assert recent.get("k", slow) == "older"
    assert recent.get("k", lambda: "read again") == "newer"
    clock.now += 10
    assert recent.get("k", lambda: "read again") == "read again"


def test_max_age_zero_never_reuses_and_forget_drops() -> None:
    clock = Clock()
    never: Recent[str, int] = Recent(0.0, clock=clock)
    assert never.get("k", lambda: 1) == 1
    assert never.get("k", lambda: 2) == 2
    recent: Recent[str, int] = Recent(60.0, clock=clock)
    assert recent.get("k", lambda: 1) == 1
    recent.forget("k")
    assert recent.get("k", lambda: 2) == 2
