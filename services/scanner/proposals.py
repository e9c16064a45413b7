"""Trade proposals: how one is written, read back, and expired.

A proposal is written with the market snapshot the analyst saw (``price``: the last price as a
decimal string, which the executor's price guard compares with), a snapshot of the user's live
policy (for the audit trail only: the executor reads the live one), ``expires_at = now + TTL``
and status ``open``; its creation is audited in the same transaction. Job-made proposals are
written only inside the job's fenced transaction (lease.py); this module never opens one itself.

:class:`ExpirySweeper` marks open proposals past their expiry as ``expired`` across users, through
``oracle.expire_due_proposals``. Reads show a proposal past its expiry as expired even before the
sweep reaches it.

A proposal's status is only about expiry: an executed proposal stays ``open`` until it expires.
Execution state lives in the executor's ``trade_executions`` (which the scanner cannot read), and
the executor refuses a second execution of a proposal (ALREADY_EXISTS); the ProposalStatus proto
comment says so to API clients.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from services.scanner import SERVICE, repository
from services.scanner.analyst import TradeIdea
from services.scanner.market_data import MarketSnapshot
from services.scanner.repository import Row
from shared import audit
from shared.db import Conn, Database
from shared.errors import NotFound, OracleError
from shared.ids import new_id
from shared.policy import Policy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Proposal:
    """One stored proposal."""

    proposal_id: str
    user_id: str
    job_id: str | None
    market: str
    side: str
    amount_quote: Decimal
    confidence: int
    rationale: str
    analyst: str
    model: str
    status: str  # open | expired (never "executed": see the module docstring)
    created_at: datetime
    expires_at: datetime
    market_snapshot: dict[str, Any]
    policy_snapshot: dict[str, Any]

    @classmethod
    def from_row(cls, row: Row) -> Proposal:
        return cls(
            proposal_id=row["proposal_id"],
            user_id=row["user_id"],
            job_id=row["job_id"],
            market=row["market"],
            side=row["side"],
            amount_quote=row["amount_quote"],
            confidence=row["confidence"],
            rationale=row["rationale"],
            analyst=row["analyst"],
            model=row["model"],
            status=row["status"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            market_snapshot=row["market_snapshot"],
            policy_snapshot=row["policy_snapshot"],
        )


def write(
    conn: Conn,
    *,
    user_id: str,
    job_id: str | None,
    idea: TradeIdea,
    analyst: str,
    snapshot: MarketSnapshot,
    policy: Policy,
    ttl: timedelta,
    fencing_token: int | None,
    principal: str,
) -> Proposal:
    """Insert one open proposal and audit it, in the caller's transaction. The database stamps
    its creation and expiry (``ttl`` is the lifetime asked for, capped by the database)."""
    market_snapshot = snapshot.to_json()
    if idea.indicators:
        market_snapshot["indicators"] = dict(idea.indicators)
    row = repository.insert_proposal(
        conn,
        proposal_id=new_id(),
        user_id=user_id,
        job_id=job_id,
        market=snapshot.market,
        side=idea.side,
        amount_quote=idea.amount_eur,
        confidence=idea.confidence,
        rationale=idea.rationale[:4000],
        analyst=analyst,
        model=idea.model,
        market_snapshot=market_snapshot,
        policy_snapshot=policy.snapshot(),
        lifetime=ttl,
        fencing_token=fencing_token,
    )
    proposal = Proposal.from_row(row)
    audit.append(
        conn,
        service=SERVICE,
        kind="proposal.created",
        subject_id=proposal.proposal_id,
        principal=principal,
        payload={
            "job_id": job_id,
            "market": proposal.market,
            "side": proposal.side,
            "amount_quote": str(proposal.amount_quote),
            "confidence": proposal.confidence,
            "analyst": analyst,
            "model": proposal.model,
            "price": market_snapshot["price"],
            "expires_at": proposal.expires_at.isoformat(),
            "fencing_token": fencing_token,
        },
    )
    return proposal


class Proposals:
    """Reading a user's proposals and expiring everyone's."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, user_id: str, proposal_id: str) -> Proposal:
        with self._db.transaction(user_id) as conn:
            row = repository.get_proposal(conn, proposal_id)
        if row is None:
            raise NotFound("proposal", proposal_id, reason="PROPOSAL_NOT_FOUND")
        return Proposal.from_row(row)

    def list(
        self, user_id: str, *, status: str | None, after: tuple[datetime, str] | None, limit: int
    ) -> list[Proposal]:
        with self._db.transaction(user_id) as conn:
            rows = repository.list_proposals(conn, status=status, after=after, limit=limit)
        return [Proposal.from_row(r) for r in rows]

    def expire_due(self) -> int:
        """Mark every open proposal past its expiry as expired; how many were."""
        with self._db.transaction(None) as conn:
            count = repository.expire_due_proposals(conn)
        if count:
            log.info("expired proposals", extra={"count": count})
        return count


class ExpirySweeper:
    """Runs :meth:`Proposals.expire_due` every ``interval_seconds`` in a background thread."""

    def __init__(self, proposals: Proposals, interval_seconds: float) -> None:
        self._proposals = proposals
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self._interval):
                try:
                    self._proposals.expire_due()
                except OracleError as exc:
                    log.warning("proposal expiry sweep failed: %s", exc.reason)

        self._thread = threading.Thread(target=loop, name="scanner-expiry", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
