"""``ingest watch``: re-ingest every source at its ``refresh`` interval, until stopped.

APScheduler (3.x) holds one interval job per source; after each run the job is moved to the time the
registry says the source is next due, so a restarted watcher continues the same schedule:

- next due = the source's ``last_run`` (registry ``sources`` table) + its ``refresh``;
- a source whose last run failed is retried sooner, with backoff: ``min(refresh, 5 min * 2**(n-1))``
  after ``n`` consecutive failed runs (item failures inside a working source wait for the next run);
- a source never run, or overdue (the watcher was down), runs at once.

Runs execute one at a time (a one-thread executor) and each takes the data directory's ingest lock
(waiting while a manual ``ingest run`` holds it). A second watcher on the same data directory exits
with a message naming the first one's pid. A failing source, or a run stopped by a full disk or an
unreachable store, is logged and rescheduled with backoff; the watcher keeps going. The sources file
and the managed ``sources.added.yaml`` beside it are re-read when they change (an invalid edit keeps
the previous sources and is reported).
"""
from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Callable, Iterator

from apscheduler.executors.pool import ThreadPoolExecutor as APThreadPool
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from ingest.lock import HeldLock, LockBusy, registry_lock
from ingest.pipeline import IngestReport, run_ingest
from ingest.sources import Source, load_all_sources, managed_path
from kb.errors import KBError
from kb.registry import open_registry
from kb.settings import Settings
from kb.times import datetime_of_epoch, epoch_of_iso, iso_of_epoch

log = logging.getLogger(__name__)

#: First retry delay after a failed run of a source (doubled for each further failure, capped by refresh).
RETRY_BASE = 300.0
#: How often the watcher checks whether the sources file changed (seconds).
SYNC_SECONDS = 10.0
#: How often the watcher checks that it still holds its one-watcher lock (seconds; PostgreSQL registry).
LOCK_CHECK_SECONDS = 5.0


@dataclass
class WatchEvent:
    """Something the watcher did, for the CLI to print."""

    kind: str                      # "scheduled" | "run" | "error" | "sources" | "lock" | "stopped"
    message: str
    source: str = ""
    report: IngestReport | None = None


@dataclass
class SourceState:
    """What the watcher remembers about a source between runs (the registry is the durable copy)."""

    failures: int = 0              # consecutive runs that raised (store unreachable, disk full, ...)
    last_attempt: float = 0.0      # epoch of the last attempt, successful or not
    runs: int = 0


def retry_delay(refresh: float, failures: int) -> float:
    """Seconds before re-trying a source after ``failures`` consecutive failed runs."""
    if failures <= 0:
        return float(refresh)
    return float(min(refresh, RETRY_BASE * 2 ** (failures - 1)))


def next_due(source: Source, row: dict | None, state: SourceState | None = None, now: float | None = None) -> float:
    """Epoch seconds when ``source`` is next due, from its registry row (and this watcher's own failures)."""
    now = time.time() if now is None else now
    due = now
    last = epoch_of_iso((row or {}).get("last_run"))
    if last is not None:
        due = last + retry_delay(source.refresh_seconds, int((row or {}).get("consecutive_failures") or 0))
    if state and state.failures:
        due = max(due, state.last_attempt + retry_delay(source.refresh_seconds, state.failures))
    return due


@contextmanager
def watch_lock(settings: Settings) -> Iterator[HeldLock]:
    """One watcher per registry: an exclusive ``flock`` on ``<data>/watch.lock``, or on PostgreSQL
    (``KB_REGISTRY_URL``) an advisory lock on its server across machines (freed even by kill -9)."""
    if settings.registry_url:
        with registry_lock(settings, "ingest-watch",
                           busy=lambda holder, where: f"another `ingest watch` (pid {holder}) is already running on "
                           f"the registry {where}; stop it first, or use another KB_REGISTRY_URL") as held:
            yield held
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.data_dir / "watch.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise LockBusy(f"another `ingest watch` (pid {holder}) is already running on {settings.data_dir}; "
                           "stop it first, or use another KB_DATA_DIR") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield HeldLock()
    finally:
        os.close(fd)


@dataclass
class Watcher:
    """Scheduled re-ingestion of the sources of one sources file."""

    settings: Settings
    sources_file: Path
    max_runs: int | None = None            # stop after this many source runs
    duration: float | None = None          # stop after this many seconds
    on_event: Callable[[WatchEvent], None] = lambda e: None
    sources: list[Source] = field(default_factory=list)
    state: dict[str, SourceState] = field(default_factory=dict)
    lost_lock: bool = False                # stopped because another watcher took the lock
    runs: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _mtime: tuple[float, float] = (0.0, 0.0)
    _managed: set[str] = field(default_factory=set)   # names read from the managed file
    _running: str | None = None            # the source whose run is in progress (its job is paused)

    def __post_init__(self) -> None:
        self.sources_file = Path(self.sources_file)
        self.sources = self._load()   # a bad sources file at start is a ConfigError (exit 2)
        self._mtime = self._file_mtime()
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": APThreadPool(max_workers=1), "sync": APThreadPool(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None})

    # -- schedule ---------------------------------------------------------------------------
    def _file_mtime(self) -> tuple[float, float]:
        """Modification times of the sources file and of the managed file beside it (0 when absent)."""
        def mtime(p: Path) -> float:
            try:
                return p.stat().st_mtime
            except OSError:
                return 0.0

        return mtime(self.sources_file), mtime(managed_path(self.sources_file))

    def _load(self) -> list[Source]:
        """Both sources files. A broken managed file is reported; the user's sources go on, with the managed
        sources read before it broke (none at start)."""
        loaded = load_all_sources(self.sources_file)
        for problem in loaded.problems:
            self.on_event(WatchEvent("error", problem))
        if loaded.problems:
            own = {s.name for s in loaded.sources}
            return loaded.sources + [s for s in self.sources if s.name in self._managed and s.name not in own]
        self._managed = {n for n, f in loaded.origin.items() if f != self.sources_file}
        return loaded.sources

    def _rows(self) -> dict[str, dict]:
        reg = open_registry(self.settings)
        try:
            return {r["name"]: r for r in reg.sources()}
        finally:
            reg.close()

    def _schedule(self, source: Source, rows: dict[str, dict] | None = None) -> float:
        """Put the source's job at its next due time (an interval job, moved after every run); returns it.

        Interval rather than one-shot jobs: APScheduler removes a spent one-shot job by id after
        submitting it, which could race with the run re-adding itself; an interval job is only moved.
        """
        rows = self._rows() if rows is None else rows
        due = next_due(source, rows.get(source.name), self.state.get(source.name))
        when = datetime_of_epoch(max(due, time.time()))
        job_id = f"source:{source.name}"
        job = self.scheduler.get_job(job_id)
        if job is not None and job.trigger.interval.total_seconds() == source.refresh_seconds:
            job.modify(next_run_time=when)
        else:
            self.scheduler.add_job(self._run_source, IntervalTrigger(seconds=source.refresh_seconds, timezone=UTC),
                                   args=[source.name], id=job_id, name=source.name, next_run_time=when,
                                   replace_existing=True)
        return due

    def _schedule_all(self) -> None:
        rows = self._rows()
        for src in self.sources:
            if src.name == self._running:   # rescheduled when its run ends
                continue
            due = self._schedule(src, rows)
            self.on_event(WatchEvent("scheduled", f"{src.name}: every {_human(src.refresh_seconds)}, "
                                                  f"next run {_at(due)}", src.name))

    def _sync_sources(self) -> None:
        """Re-read the sources file when it changed; add, drop and reschedule sources accordingly."""
        mtime = self._file_mtime()
        if mtime == self._mtime:
            return
        self._mtime = mtime
        try:
            fresh = self._load()
        except KBError as exc:
            self.on_event(WatchEvent("error", f"{self.sources_file} changed but is invalid, keeping the previous "
                                              f"sources: {exc}"))
            return
        old = {s.name for s in self.sources}
        self.sources = fresh
        for name in old - {s.name for s in fresh}:
            if self.scheduler.get_job(f"source:{name}"):
                self.scheduler.remove_job(f"source:{name}")
        self.on_event(WatchEvent("sources", f"{self.sources_file} changed: {len(fresh)} source(s); "
                                            f"added {sorted({s.name for s in fresh} - old) or 'none'}, "
                                            f"removed {sorted(old - {s.name for s in fresh}) or 'none'}"))
        self._schedule_all()

    # -- one run ----------------------------------------------------------------------------
    def _run_source(self, name: str) -> None:
        if self._stop.is_set():
            return
        src = next((s for s in self.sources if s.name == name), None)
        if src is None:
            return
        st = self.state.setdefault(name, SourceState())
        st.last_attempt = time.time()
        job = self.scheduler.get_job(f"source:{name}")
        if job is not None:   # paused while it runs (a run may outlast the refresh); rescheduled at the end
            job.pause()
        self._running = name
        try:
            report = run_ingest(self.settings, self.sources, only=[name], progress=False,
                                sources_file=str(self.sources_file), wait_for_lock=True)
            st.failures = 0
            rep = report.sources[0] if report.sources else None
            t = report.totals()
            errors = "; ".join(f"{e['item']}: {e['error']}" for e in (rep.errors if rep else []))
            self.on_event(WatchEvent(
                "run", f"{name}: {rep.status if rep else 'ok'}: {t['documents_new']} new, {t['documents_updated']} "
                       f"updated, {t['documents_unchanged']} unchanged, {t['duplicates']} duplicates, "
                       f"{t['chunks_embedded']} chunks embedded, {t['failed']} failed"
                       + (f" ({errors})" if errors else ""), name, report))
        except Exception as exc:
            st.failures += 1
            if not isinstance(exc, KBError):
                log.exception("run of %s failed", name)
            self.on_event(WatchEvent("error", f"{name}: run stopped: {exc}; retrying with backoff", name))
        finally:
            self._running = None
            st.runs += 1
            self.runs += 1
            if self.max_runs is not None and self.runs >= self.max_runs:
                self._stop.set()
            elif not self._stop.is_set():
                try:
                    due = self._schedule(src)
                    self.on_event(WatchEvent("scheduled", f"{name}: next run {_at(due)}", name))
                except Exception as exc:  # noqa: BLE001 - e.g. the registry is unreachable right now
                    # The interval job stays in place: the source is tried again one refresh later.
                    self.on_event(WatchEvent("error", f"{name}: cannot read the schedule ({exc}); next try in "
                                                      f"{_human(src.refresh_seconds)}", name))

    # -- lifetime ---------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the watcher to stop after the run in progress."""
        self._stop.set()

    def run(self) -> int:
        """Schedule every source and block until stopped (max_runs, duration, ``stop()``); returns runs done."""
        with watch_lock(self.settings) as held:
            self._schedule_all()
            self.scheduler.add_job(self._sync_sources, "interval", seconds=SYNC_SECONDS, id="sync-sources",
                                   executor="sync")
            self.scheduler.start()
            deadline = None if self.duration is None else time.monotonic() + self.duration
            next_check = time.monotonic() + LOCK_CHECK_SECONDS
            try:
                while not self._stop.is_set():
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        break
                    self._stop.wait(timeout=0.5 if left is None else min(0.5, left))
                    if time.monotonic() >= next_check:
                        next_check = time.monotonic() + LOCK_CHECK_SECONDS
                        self._check_lock(held)
            finally:
                self._stop.set()
                self.scheduler.shutdown(wait=True)   # lets a run in progress finish
            self.on_event(WatchEvent("stopped", f"stopped after {self.runs} run(s)"))
            return self.runs


    def _check_lock(self, held: HeldLock) -> None:
        """Retake the one-watcher lock after a lost registry session; stop when another watcher took it."""
        try:
            state = held.check()
        except Exception as exc:  # noqa: BLE001 - the registry is unreachable right now: try again later
            self.on_event(WatchEvent("error", f"cannot check the watcher lock ({exc}); trying again in "
                                              f"{LOCK_CHECK_SECONDS:.0f} s"))
            return
        if state == "retaken":
            self.on_event(WatchEvent("lock", "the registry session was lost; took the one-watcher lock again"))
        elif state == "lost":
            self.on_event(WatchEvent("error", f"the registry session was lost and another `ingest watch` "
                                              f"(pid {held.holder()}) took over; stopping this one"))
            self.lost_lock = True
            self._stop.set()


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _at(epoch: float) -> str:
    if epoch <= time.time() + 0.5:
        return "now"
    return iso_of_epoch(epoch)
