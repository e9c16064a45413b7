"""The life of one reservation (one gpt_usage_log row) and why a settle request is refused.

    reserved ──▶ committed        CommitCall: the call happened, actual usage recorded
       │   └───▶ released         ReleaseCall: the call was never made (stops counting)
       └──────▶ expired ──▶ committed   TTL passed (still counts); a late commit is accepted

Committed and released are final. Migration 0010 enforces the same machine in the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

# ErrorInfo reasons of refused settle requests.
NOT_FOUND = "RESERVATION_NOT_FOUND"
ALREADY_COMMITTED = "RESERVATION_ALREADY_COMMITTED"
RELEASED = "RESERVATION_RELEASED"
EXPIRED = "RESERVATION_EXPIRED"


class Status(StrEnum):
    """A row's status, as stored."""

    RESERVED = "reserved"
    COMMITTED = "committed"
    RELEASED = "released"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Reservation:
    """One row of the usage log."""

    reservation_id: str
    user_id: str
    purpose: str
    model: str
    status: Status
    max_tokens: int
    estimated_tokens: int
    estimated_cost_micros: int
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_micros: int | None
    reserved_at: datetime
    expires_at: datetime

    def commit_refusal(self) -> str | None:
        """Why this reservation cannot be committed now; None when it can (reserved or expired)."""
        if self.status is Status.COMMITTED:
            return ALREADY_COMMITTED
        if self.status is Status.RELEASED:
            return RELEASED
        return None

    def release_refusal(self, now: datetime) -> str | None:
        """Why this reservation cannot be released at ``now``; None when it can.

        Only a reserved row within its TTL may be released: past the TTL it counts as expired
        whether or not the sweeper has marked it yet, so the answer never depends on timing."""
        if self.status is Status.COMMITTED:
            return ALREADY_COMMITTED
        if self.status is Status.RELEASED:
            return RELEASED
        if self.status is Status.EXPIRED or self.expires_at <= now:
            return EXPIRED
        return None
