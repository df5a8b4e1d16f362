"""File-system facts the index depends on: can this folder be written?"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_problem(folder: Path) -> OSError | None:
    """``None`` when a file can be created and removed in ``folder`` (created if missing), else the error.

    A real probe, not ``os.access``: root passes ``os.access`` on a read-only mount."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return exc
    return None
