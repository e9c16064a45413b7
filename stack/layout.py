"""Where the local stack keeps its state: one folder (default ``.stack/``, git-ignored) for the
operator token, logs, the simulator's key file and ``status.json``; the database in
``.pgdata/`` (or ``<state-dir>/pgdata`` when a state folder is given).

``status.json`` is how scripts and tests find a running stack: its endpoints, the process ids
and how many cycles it has shown. Secrets never go into it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oraclectl.defaults import PROJECT_ROOT, STATE_DIR_NAME, STATUS_FILE_NAME, TOKEN_FILE_NAME
from shared.db.embedded import DEFAULT_DATA_DIR

DEFAULT_STATE_DIR = PROJECT_ROOT / STATE_DIR_NAME


@dataclass(frozen=True)
class Layout:
    """The files of one stack."""

    state_dir: Path
    pgdata: Path

    @classmethod
    def make(cls, state_dir: Path | None, pgdata: Path | None) -> Layout:
        """Defaults: ``.stack/`` and ``.pgdata/`` in the project; with only a state folder given,
        the database goes inside it."""
        state = (state_dir or DEFAULT_STATE_DIR).resolve()
        if pgdata is not None:
            data = pgdata.resolve()
        else:
            data = DEFAULT_DATA_DIR if state_dir is None else state / "pgdata"
        return cls(state, data)

    @property
    def token_file(self) -> Path:
        return self.state_dir / TOKEN_FILE_NAME

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "stack.lock"

    @property
    def status_file(self) -> Path:
        return self.state_dir / STATUS_FILE_NAME

    @property
    def certs(self) -> Path:
        """The TLS mode's CA, certificates and keys (``shared.certs``; new every run)."""
        return self.state_dir / "certs"

    @property
    def exchange_keys_file(self) -> Path:
        return self.state_dir / "exchange-keys.json"

    def prepare(self) -> None:
        """Create the folders. Secret files are 0600 each (the folder itself stays traversable:
        the database server, running as its own system user, may keep its data inside it)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)

    def write_private(self, path: Path, text: str) -> None:
        """Write ``text`` to ``path`` readable by this user only (mode 0600), atomically."""
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            os.fchmod(descriptor, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def write_status(self, status: dict[str, Any]) -> None:
        self.write_private(self.status_file, json.dumps(status, indent=2, sort_keys=True) + "\n")


def read_status(state_dir: Path) -> dict[str, Any] | None:
    """A stack's ``status.json``, or None when there is none (yet)."""
    try:
        data: dict[str, Any] = json.loads((state_dir / STATUS_FILE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data
