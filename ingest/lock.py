"""One ingest at a time per data directory: an exclusive ``flock`` on ``<data>/ingest.lock``."""
from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from typing import Iterator

from kb.errors import KBError
from kb.settings import Settings


class LockBusy(KBError):
    """Another ingest holds the lock."""


@contextmanager
def run_lock(settings: Settings, wait: bool = False, timeout: float | None = None) -> Iterator[None]:
    """Hold the data directory's ingest lock (released by the OS even after kill -9)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / "ingest.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
                if not wait or (deadline is not None and time.monotonic() > deadline):
                    raise LockBusy(f"another ingest (pid {holder}) is running on {settings.data_dir}; "
                                   "wait for it to finish, or use another KB_DATA_DIR") from None
                time.sleep(0.5)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
