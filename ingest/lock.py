"""One ingest at a time per registry: an exclusive ``flock`` on ``<data>/ingest.lock`` beside a SQLite registry;
with ``KB_REGISTRY_URL`` (PostgreSQL) a session-level advisory lock on the registry's server, which holds
across machines and is freed when its connection ends (so also when the process dies, kill -9 included)."""
from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from kb.errors import KBError
from kb.files import write_problem
from kb.registry import open_registry
from kb.settings import Settings


class LockBusy(KBError):
    """Another ingest holds the lock."""


class LockLost(LockBusy):
    """The run's lock was lost with its PostgreSQL session and another ingest took it: the run stopped."""


#: How often a running ingest checks that it still holds its lock (PostgreSQL; a file lock cannot be lost).
RUN_LOCK_CHECK_SECONDS = 5.0


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


class HeldLock:
    """A lock this process holds; ``check()`` says whether it still does, retaking a lost one when free.

    A file lock cannot be lost. A PostgreSQL advisory lock is lost with its session (a server restart, a
    killed connection): ``check()`` then takes it again on the new session when nobody else took it in the
    gap (``"retaken"``), or says another process has it (``"lost"``: the caller must stop). A client that
    reconnected before the server noticed its old session was gone still finds the lock held by that old
    session: that is still ``"held"`` (the next check takes it once the server ends the old session)."""

    def __init__(self, name: str = "", registry: Any = None) -> None:
        self.name = name
        self._reg = registry
        self._session = registry.session_id() if registry is not None else None

    def check(self) -> str:
        """``"held"``, ``"retaken"`` or ``"lost"``."""
        if self._reg is None or self._reg.holds_lock(self.name):
            return "held"
        if self._reg.try_lock(self.name):
            self._session = self._reg.session_id()
            return "retaken"
        return "held" if self._reg.lock_session(self.name) == self._session else "lost"

    def holder(self) -> str:
        """Who holds the lock now (``pid@host``), when another process does."""
        return (self._reg.lock_holder(self.name) if self._reg is not None else None) or "another process"

    @property
    def where(self) -> str:
        """The registry the lock lives on (password hidden), or '' for a file lock."""
        return str(self._reg.where) if self._reg is not None else ""


@contextmanager
def registry_lock(settings: Settings, name: str, busy: Callable[[str, str], str], wait: bool = False,
                  timeout: float | None = None) -> Iterator[HeldLock]:
    """Hold the advisory lock ``name`` of a PostgreSQL registry on a connection of its own, for the block.

    ``LockBusy(busy(holder, registry))`` when another session holds it (``holder``: ``pid@host``), unless
    ``wait``: then it is tried again every half second (until ``timeout`` seconds, when given)."""
    reg = open_registry(settings)
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not reg.try_lock(name):
            if not wait or (deadline is not None and time.monotonic() > deadline):
                raise LockBusy(busy(reg.lock_holder(name) or "another process", reg.where))
            time.sleep(0.5)
        yield HeldLock(name, reg)
    finally:
        reg.close()   # ends the session, and with it the lock


@contextmanager
def run_lock(settings: Settings, wait: bool = False, timeout: float | None = None) -> Iterator[HeldLock]:
    """Hold the registry's ingest lock (released even after kill -9: by the OS, or by PostgreSQL when the
    process's connection dies); the ``HeldLock`` tells a long run whether it still holds it."""
    check_writable(settings)
    if settings.registry_url:
        with registry_lock(settings, "ingest-run", wait=wait, timeout=timeout,
                           busy=lambda holder, where: f"another ingest (pid {holder}) is running on the registry "
                           f"{where}; wait for it to finish, or use another KB_REGISTRY_URL") as held:
            yield held
        return
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
        yield HeldLock()
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
