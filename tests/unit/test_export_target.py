"""``kb export -o``: only regular files (or new ones) are written, never through a device or a symlink."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from kb.errors import UsageError
from kb.export import check_export_target


@pytest.mark.parametrize("target,match", [
    ("", "needs a file name"),
    ("/dev/null", "not a regular file"),
    ("/nonexistent-folder/x.md", "does not exist"),
])
def test_unsafe_targets_are_refused(target: str, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        check_export_target(target)


def test_a_folder_and_a_symlink_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="folder"):
        check_export_target(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    link = tmp_path / "summary.md"
    link.symlink_to(victim)
    with pytest.raises(UsageError, match="symbolic link"):
        check_export_target(link)
    assert victim.read_text(encoding="utf-8") == "keep me"


def test_a_fifo_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.md"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="not a regular file"):
        check_export_target(fifo)


def test_regular_and_new_files_are_accepted(tmp_path: Path) -> None:
    existing = tmp_path / "old.md"
    existing.write_text("x", encoding="utf-8")
    assert check_export_target(existing) == existing
    assert check_export_target(tmp_path / "new.pdf") == tmp_path / "new.pdf"
