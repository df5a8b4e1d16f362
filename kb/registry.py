"""SQLite registry beside the index: sources, documents, versions, chunks, snapshots and runs.

The registry is the source of truth: Chroma holds the vectors of the chunks listed here. A version is
written ``pending`` with its chunks in one transaction, its vectors are then added to the store, and it
becomes ``indexed`` last, so a run killed at any point is finished by the next one without duplicates.
It lives in ``kb`` because answers and exports read the stored text to verify quotes; only ``ingest``
writes to it.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from kb.errors import SnapshotError, StoreUnavailable
from kb.settings import FOREVER

SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    name TEXT PRIMARY KEY, config TEXT NOT NULL, first_seen TEXT, last_run TEXT, last_success TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0, last_error TEXT, removed_at TEXT);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, source TEXT NOT NULL, url TEXT NOT NULL, location TEXT NOT NULL, title TEXT, publisher TEXT, author TEXT,
    doctype TEXT, language TEXT, published TEXT, first_seen TEXT, last_checked TEXT,
    duplicate_of TEXT, duplicate_kind TEXT, duplicate_score REAL, etag TEXT, last_modified TEXT,
    item_hash TEXT);
CREATE INDEX IF NOT EXISTS documents_source ON documents(source);
CREATE TABLE IF NOT EXISTS versions (
    version_id TEXT PRIMARY KEY, doc_id TEXT NOT NULL, text_sha TEXT NOT NULL, snapshot_sha TEXT,
    retrieved TEXT NOT NULL, valid_from INTEGER NOT NULL, valid_to INTEGER NOT NULL, title TEXT,
    language TEXT, published TEXT, effective_date TEXT, status TEXT NOT NULL, n_chunks INTEGER NOT NULL,
    text TEXT NOT NULL, meta TEXT, signature BLOB);
CREATE INDEX IF NOT EXISTS versions_doc ON versions(doc_id, valid_from);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id TEXT PRIMARY KEY, version_id TEXT NOT NULL, doc_id TEXT NOT NULL, seq INTEGER NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, language TEXT, text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_version ON chunks(version_id);
CREATE TABLE IF NOT EXISTS snapshots (
    sha256 TEXT PRIMARY KEY, url TEXT NOT NULL, retrieved TEXT NOT NULL, content_type TEXT, size INTEGER,
    path TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started TEXT NOT NULL, finished TEXT, sources_file TEXT, status TEXT,
    report TEXT);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


#: SQLite errors that mean the disk or the file, not the statement, is at fault.
_STORAGE_FAILURE = re.compile(r"disk is full|disk I/O error|database is locked|unable to open|readonly database|"
                              r"no space", re.IGNORECASE)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_when(value: str) -> int:
    """ISO-8601 date or date-time -> epoch seconds (dates mean midnight UTC at the end of that day)."""
    value = value.strip()
    try:
        if len(value) == 10:
            dt = datetime.fromisoformat(value).replace(tzinfo=timezone.utc)
            return int(dt.timestamp()) + 86399
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a date (use YYYY-MM-DD or an ISO-8601 date-time)") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp())


@dataclass
class VersionRow:
    version_id: str
    doc_id: str
    text_sha: str
    snapshot_sha: str | None
    retrieved: str
    valid_from: int
    valid_to: int
    title: str
    language: str
    published: str
    effective_date: str
    status: str
    n_chunks: int
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChunkRow:
    chunk_id: str
    version_id: str
    doc_id: str
    seq: int
    start: int
    end: int
    language: str
    text: str


class Registry:
    """Thin typed access to the registry database (one connection, thread-safe)."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = Path(path)
        try:
            if readonly:
                if not self.path.exists():
                    raise StoreUnavailable(f"no registry at {self.path}; build the index with `python -m ingest run`")
                self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=60, check_same_thread=False)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.executescript(SCHEMA)
            self.db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open the registry {self.path}: {exc}") from exc
        self.db.row_factory = sqlite3.Row
        self.lock = threading.RLock()

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write."""
        with self.lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                yield self.db
                self.db.execute("COMMIT")
            except BaseException as exc:
                if self.db.in_transaction:  # SQLite already rolled back e.g. a COMMIT that hit a full disk
                    self.db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError) and _STORAGE_FAILURE.search(str(exc)):
                    raise StoreUnavailable(f"cannot write the registry {self.path}: {exc}; free disk space or fix "
                                           "the data directory, then run the same command again") from exc
                raise

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self.db.execute(sql, params).fetchall()

    # -- meta -------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0]["value"] if rows else default

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (key, value))

    def generation(self) -> int:
        """A counter bumped whenever indexed content changes (for caches such as BM25)."""
        return int(self.get_meta("generation", "0") or 0)

    # -- documents and versions -------------------------------------------------------------
    def document(self, doc_id: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM documents WHERE doc_id=?", (doc_id,))
        return dict(rows[0]) if rows else None

    def documents(self, source: str | None = None) -> list[dict[str, Any]]:
        if source:
            return [dict(r) for r in self.query("SELECT * FROM documents WHERE source=? ORDER BY url", (source,))]
        return [dict(r) for r in self.query("SELECT * FROM documents ORDER BY source, url")]

    def versions(self, doc_id: str) -> list[VersionRow]:
        rows = self.query("SELECT * FROM versions WHERE doc_id=? ORDER BY valid_from", (doc_id,))
        return [self._version(r) for r in rows]

    def version(self, version_id: str) -> VersionRow | None:
        rows = self.query("SELECT * FROM versions WHERE version_id=?", (version_id,))
        return self._version(rows[0]) if rows else None

    def latest_version(self, doc_id: str) -> VersionRow | None:
        rows = self.query("SELECT * FROM versions WHERE doc_id=? ORDER BY valid_from DESC LIMIT 1", (doc_id,))
        return self._version(rows[0]) if rows else None

    @staticmethod
    def _version(r: sqlite3.Row) -> VersionRow:
        return VersionRow(r["version_id"], r["doc_id"], r["text_sha"], r["snapshot_sha"], r["retrieved"],
                          r["valid_from"], r["valid_to"], r["title"] or "", r["language"] or "und",
                          r["published"] or "", r["effective_date"] or "", r["status"], r["n_chunks"],
                          json.loads(r["meta"] or "{}"))

    def version_text(self, version_id: str) -> str:
        """The stored text of a version (what citation offsets point into), hash-checked."""
        rows = self.query("SELECT text, text_sha FROM versions WHERE version_id=?", (version_id,))
        if not rows:
            raise SnapshotError(f"version {version_id} is not in the registry")
        text = rows[0]["text"]
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != rows[0]["text_sha"]:
            raise SnapshotError(f"the stored text of version {version_id} does not match its SHA-256; "
                                "re-ingest the source to restore it")
        return text

    def chunks(self, version_id: str | None = None) -> list[ChunkRow]:
        if version_id:
            rows = self.query("SELECT * FROM chunks WHERE version_id=? ORDER BY seq", (version_id,))
        else:
            rows = self.query("SELECT * FROM chunks ORDER BY version_id, seq")
        return [ChunkRow(r["chunk_id"], r["version_id"], r["doc_id"], r["seq"], r["start"], r["end"],
                         r["language"] or "und", r["text"]) for r in rows]

    def indexed_chunk_ids(self) -> set[str]:
        return {r[0] for r in self.query(
            "SELECT c.chunk_id FROM chunks c JOIN versions v USING(version_id) WHERE v.status='indexed'")}

    def valid_version_ids(self, at: int | None = None) -> set[str]:
        """Indexed versions valid at epoch ``at`` (the current ones when None)."""
        if at is None:
            rows = self.query("SELECT version_id FROM versions WHERE status='indexed' AND valid_to=?", (FOREVER,))
        else:
            rows = self.query("SELECT version_id FROM versions WHERE status='indexed' AND valid_from<=? AND valid_to>?",
                              (at, at))
        return {r[0] for r in rows}

    # -- snapshots --------------------------------------------------------------------------
    def snapshot_path(self, sha: str) -> Path:
        return self.path.parent / "snapshots" / sha[:2] / f"{sha}.gz"

    def save_snapshot(self, content: bytes, url: str, retrieved: str, content_type: str = "") -> str:
        """Store raw bytes gzip-compressed under their SHA-256 (idempotent); returns the hash."""
        sha = hashlib.sha256(content).hexdigest()
        path = self.snapshot_path(sha)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # One temp file per writer: two threads may store the same bytes (a copy served twice) at once.
            tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            with gzip.open(tmp, "wb", compresslevel=6) as fh:
                fh.write(content)
            tmp.replace(path)
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO snapshots VALUES (?,?,?,?,?,?)",
                       (sha, url, retrieved, content_type, len(content), str(path.relative_to(self.path.parent))))
        return sha

    def snapshot(self, sha: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM snapshots WHERE sha256=?", (sha,))
        return dict(rows[0]) if rows else None

    def verify_snapshot(self, sha: str) -> None:
        """Re-hash a stored snapshot; raises ``SnapshotError`` when it is missing or altered."""
        path = self.snapshot_path(sha)
        if not path.exists():
            raise SnapshotError(f"snapshot {sha} is missing from {path.parent}; re-ingest its source")
        try:
            with gzip.open(path, "rb") as fh:
                data = fh.read()
        except (OSError, EOFError) as exc:
            raise SnapshotError(f"snapshot {sha} cannot be read ({exc}); it was altered or truncated") from exc
        if hashlib.sha256(data).hexdigest() != sha:
            raise SnapshotError(f"snapshot {path} no longer matches its SHA-256 {sha}: it was altered")

    def read_snapshot(self, sha: str) -> bytes:
        self.verify_snapshot(sha)
        with gzip.open(self.snapshot_path(sha), "rb") as fh:
            return fh.read()

    # -- sources and runs -------------------------------------------------------------------
    def sources(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.query("SELECT * FROM sources ORDER BY name")]

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        return [dict(r) for r in self.query("SELECT * FROM runs ORDER BY started DESC LIMIT ?", (limit,))]
