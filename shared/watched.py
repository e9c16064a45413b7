"""Credential files that are re-read when they change: rotation without a restart.

A :class:`WatchedFile` holds the parsed contents of one file (principal tokens, the user-token
public keys, the revocation list, a certificate or key) and re-reads it when the file changes
(inode, size or modification time — Kubernetes swaps a Secret volume's files by renaming a
symlink, editors and ``make certs`` replace them) or when :func:`reload_all` was called (SIGHUP).
Checking is one ``stat`` per use, so every call and every TLS handshake sees the current file.

A file that cannot be read or parsed in the middle of a rotation keeps its last good contents
(logged, without the contents): a half-written file never takes a service's credentials away.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

_generation = 0
_generation_lock = threading.Lock()


def reload_all() -> None:
    """Make every watched file re-read on its next use (the SIGHUP handler calls this)."""
    global _generation
    with _generation_lock:
        _generation += 1


class WatchedFile(Generic[T]):
    """The parsed contents of ``path``, current as of the last :meth:`get`."""

    def __init__(self, path: str | Path, parse: Callable[[bytes], T]) -> None:
        self.path = Path(path)
        self._parse = parse
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int, int] | None = None
        # The first read must succeed: a service does not start without its credentials.
        self._value: T = self._read_and_stamp()

    def _signature(self) -> tuple[int, int, int, int]:
        st = os.stat(self.path)
        return (st.st_ino, st.st_size, st.st_mtime_ns, _generation)

    def _read_and_stamp(self) -> T:
        stamp = self._signature()
        value = self._parse(self.path.read_bytes())
        self._stamp = stamp
        return value

    def get(self) -> T:
        """The contents, re-read first when the file changed since the last read."""
        try:
            changed = self._signature() != self._stamp
        except OSError:
            changed = False  # mid-swap: keep what we have, look again next time
        if changed:
            with self._lock:
                try:
                    if self._signature() != self._stamp:
                        self._value = self._read_and_stamp()
                        log.info("credential file reloaded", extra={"path": str(self.path)})
                except (OSError, ValueError) as exc:
                    # Remember this version as seen (no warning per call); the next write retries.
                    with contextlib.suppress(OSError):
                        self._stamp = self._signature()
                    log.warning(
                        "credential file unreadable, keeping the last good contents",
                        extra={"path": str(self.path), "error_type": type(exc).__name__},
                    )
        return self._value

    @property
    def stamp(self) -> tuple[int, int, int, int] | None:
        """Changes whenever the contents were re-read (lets dependents rebuild what they derive)."""
        return self._stamp
