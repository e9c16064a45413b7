"""Credential files follow their changes, keep the last good contents, and reload on SIGHUP."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared import watched
from shared.watched import WatchedFile


def _parse(data: bytes) -> str:
    text = data.decode().strip()
    if not text:
        raise ValueError("empty")
    return text


def test_a_changed_file_is_reread_and_a_broken_one_keeps_the_last_good_contents(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first")
    file = WatchedFile(path, _parse)
    assert file.get() == "first"
    tmp = tmp_path / "next"
    tmp.write_text("second")
    os.replace(tmp, path)  # how Kubernetes and shared.certs replace files
    assert file.get() == "second"
    path.write_text("")  # half-written
    assert file.get() == "second"
    path.write_text("third")
    assert file.get() == "third"


def test_reload_all_rereads_a_file_whose_change_stat_cannot_see(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("aaaa")
    stat = path.stat()
    file = WatchedFile(path, _parse)
    with path.open("r+") as out:  # same inode, same size, and the old times put back
        out.write("bbbb")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert file.get() == "aaaa"
    watched.reload_all()  # what SIGHUP does
    assert file.get() == "bbbb"


def test_a_missing_file_at_start_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        WatchedFile(tmp_path / "absent", _parse)
