"""One ingest at a time per data directory: an exclusive ``flock`` on ``<data>/ingest.lock``."""
from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from kb.errors import KBError
from kb.files import write_problem
from kb.settings import Settings


class LockBusy(KBError):
    """Another ingest holds the lock."""


class DataDirNotWritable(KBError):
    """The data directory cannot be written (read-only mount, permissions): ingest cannot run there."""


def check_writable(settings: Settings) -> None:
    """``DataDirNotWritable`` unless a file can be created in the data directory."""
    exc = write_problem(settings.data_dir)
    if exc is not None:
        raise DataDirNotWritable(
            f"ingest cannot write to the data directory {settings.data_dir} ({exc.strerror or exc}): it needs write "
            "access to add documents. Questions and exports still work from a read-only index; to ingest, make "
            "KB_DATA_DIR writable or point it at a writable copy")


@contextmanager
def run_lock(settings: Settings, wait: bool = False, timeout: float | None = None) -> Iterator[None]:
    """Hold the data directory's ingest lock (released by the OS even after kill -9)."""
    check_writable(settings)
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


@contextmanager
def file_lock(path: Path, timeout: float = 30.0) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created when missing), waited for up to ``timeout`` seconds.

    Serialises short read-modify-write steps such as appending to the managed sources file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockBusy(f"{path} has been locked by another process for {timeout:.0f} s; "
                                   "try again in a moment") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)
