"""The audit trail: append-only, hash-chained per user (oracle.append_audit_event in SQL).

Each service appends its own events inside the transaction that does the thing audited, so an
event exists exactly when its change was committed. Nobody updates or deletes audit_events.
A hot path may append the event in the very statement that makes the change (:class:`Event`,
``WITH changed AS (… RETURNING …) SELECT …, <event call> FROM changed``): one round trip fewer,
and the event is written exactly when the statement changed a row.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from psycopg.types.json import Jsonb

from shared.db import SYSTEM_USER, Conn, Database
from shared.errors import InvariantBroken, OracleError

log = logging.getLogger(__name__)


# The one way into the trail (SECURITY DEFINER, migration 0090): (service, kind, subject_id,
# principal, payload). A statement that writes something and its event in one round trip calls it.
APPEND_FUNCTION = "oracle.append_audit_event"


@dataclass(frozen=True)
class Event:
    """One event to append for the transaction's user."""

    service: str
    kind: str
    subject_id: str = ""
    principal: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)

    def call(self) -> tuple[str, tuple[Any, ...]]:
        """The SQL expression that appends this event (its value: the sequence number) and its
        parameters, to put in a statement of the caller's."""
        return f"{APPEND_FUNCTION}(%s, %s, %s, %s, %s)", (
            self.service,
            self.kind,
            self.subject_id,
            self.principal,
            Jsonb(dict(self.payload)),
        )


def append(
    conn: Conn,
    *,
    service: str,
    kind: str,
    subject_id: str = "",
    principal: str = "",
    payload: Mapping[str, Any] | None = None,
) -> int:
    """Append one event for the transaction's user; returns its sequence number."""
    sql, params = Event(service, kind, subject_id, principal, payload or {}).call()
    row = conn.execute(f"SELECT {sql} AS seq", params).fetchone()
    if row is None:
        raise InvariantBroken("oracle.append_audit_event returned no row")
    return int(row["seq"])


def append_system_event(db: Database, *, service: str, kind: str, principal: str, payload: Mapping[str, Any]) -> None:
    """Best effort: a service-wide event (e.g. a refused principal) in the _system chain.

    Never raises: an audit write failing (database down) must not change the caller's answer;
    the event is then logged instead.
    """
    try:
        with db.transaction(SYSTEM_USER) as conn:
            append(conn, service=service, kind=kind, principal=principal, payload=payload)
    except OracleError:
        log.warning("audit event %s not stored (database unavailable)", kind, extra={"audit_payload": dict(payload)})
