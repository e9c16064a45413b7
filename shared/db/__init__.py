"""Database kernel: pool and per-user transactions, advisory locks, migrations, embedded server."""

from shared.db.pool import SYSTEM_USER, Conn, Database

__all__ = ["SYSTEM_USER", "Conn", "Database"]
