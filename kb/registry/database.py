"""The registry beside the index: sources, documents, versions, chunks, snapshots and runs.

The registry is the source of truth: Chroma holds the vectors of the chunks listed here. A version is
written ``pending`` with its chunks in one transaction (``add_version``), its vectors are then added to
the store, and it becomes ``indexed`` last (``mark_indexed``), so a run killed at any point is
finished by the next one without duplicates.

This module is the only place that speaks SQL to the registry's tables: every caller uses a named,
typed method. The SQL is portable (bound parameters, ``ON CONFLICT`` upserts, ``CASE`` instead of
boolean arithmetic); what belongs to one database sits behind the dialect seam ``_Dialect``:
``_SQLite`` (the default file under the data directory: ``PRAGMA``, ``BEGIN IMMEDIATE``, the
storage-failure messages) and ``_Postgres`` (``KB_REGISTRY_URL``: psycopg, ``?`` -> ``%s``, the
schema's types as BIGINT / DOUBLE PRECISION / BYTEA / ``TEXT COLLATE "C"``, read-only sessions, and
advisory locks for migrations and for the ingest and watch locks across machines). The schema comes
from ``kb.registry.schema`` as numbered migrations applied on open, in one transaction.
"""
from __future__ import annotations

import atexit
import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import sqlite3
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence
from urllib.parse import unquote, urlsplit, urlunsplit

from kb.errors import NoIndex, SnapshotError, StoreUnavailable
from kb.files import write_problem
from kb.registry.ids import chunk_id_for
from kb.registry.schema import LATEST, MIGRATIONS
from kb.times import FOREVER

if TYPE_CHECKING:
    from kb.settings import Settings

log = logging.getLogger(__name__)

#: Rows per ``IN (...)`` list (SQLite's default limit on bound parameters is 999).
_BATCH = 500


@dataclass
class VersionRow:
    """One stored version of a document (its text is read with ``Registry.version_text``)."""

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
    """One stored chunk: ``text == version_text[start:end]``."""

    chunk_id: str
    version_id: str
    doc_id: str
    seq: int
    start: int
    end: int
    language: str
    text: str


@dataclass
class DocumentRecord:
    """What ``upsert_document`` writes: a document's identity, metadata and duplicate status."""

    doc_id: str
    source: str
    url: str
    location: str
    title: str
    publisher: str
    author: str
    doctype: str
    language: str
    published: str
    checked: str
    duplicate_of: str | None = None
    duplicate_kind: str | None = None
    duplicate_score: float | None = None
    etag: str | None = None
    last_modified: str | None = None


@dataclass
class NewVersion:
    """What ``add_version`` writes (``pending`` until its vectors are stored)."""

    version_id: str
    doc_id: str
    text: str
    text_sha: str
    snapshot_sha: str | None
    retrieved: str
    valid_from: int
    title: str
    language: str
    published: str
    effective_date: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    signature: bytes | None = None
    valid_to: int = FOREVER
    status: str = "pending"


@dataclass
class NewChunk:
    """A chunk of a version about to be written: its position, span and language."""

    seq: int
    start: int
    end: int
    language: str
    text: str


def _private_copy(path: Path, wal: Path) -> Path:
    """A registry file and its WAL copied to a temporary folder (removed at exit), for reading only."""
    folder = Path(tempfile.mkdtemp(prefix="kb-registry-ro-"))
    atexit.register(shutil.rmtree, folder, True)
    shutil.copy2(path, folder / path.name)
    shutil.copy2(wal, folder / wal.name)
    log.warning("the registry %s is in a read-only folder with a write-ahead log; reading a private copy", path)
    return folder / path.name


class _Dialect:
    """The dialect seam: how to connect, begin a write, lock, translate SQL and recognise a storage failure."""

    name = ""
    #: Whether locks taken through the registry hold across machines (a shared database server).
    shared_locks = False
    #: What to do when the registry cannot be read.
    READ_FIX = ""

    @classmethod
    def errors(cls) -> tuple[Any, Any]:
        """(any error of the driver, an error of the database rather than of the caller)."""
        raise NotImplementedError

    @classmethod
    def connect(cls, target: Any, readonly: bool) -> Any:
        raise NotImplementedError

    @staticmethod
    def begin(db: Any) -> None:
        db.execute("BEGIN")

    @staticmethod
    def lock_migrations(db: Any) -> None:
        """Keep a second process from migrating at the same time (inside the migration's transaction)."""

    @staticmethod
    def ddl(statement: str) -> str:
        """A schema statement of ``kb.registry.schema`` as this database reads it."""
        return statement

    @staticmethod
    def has_table(db: Any, name: str) -> bool:
        raise NotImplementedError

    @classmethod
    def is_storage_failure(cls, exc: BaseException) -> bool:
        return False

    @classmethod
    def is_read_failure(cls, exc: BaseException) -> bool:
        """Whether a failed read means the database, not the statement, is at fault."""
        return cls.is_storage_failure(exc)


class _SQLite(_Dialect):
    """A registry file under the data directory (the default)."""

    name = "sqlite"
    #: Errors that mean the disk or the file, not the statement, is at fault.
    STORAGE_FAILURE = re.compile(r"disk is full|disk I/O error|database is locked|unable to open|readonly database|"
                                 r"no space", re.IGNORECASE)
    READ_FIX = "restore it from a backup, or move it away and rebuild the index with `python -m ingest run`"

    @classmethod
    def errors(cls) -> tuple[Any, Any]:
        return sqlite3.Error, sqlite3.DatabaseError

    @classmethod
    def connect(cls, target: Any, readonly: bool) -> sqlite3.Connection:
        path = Path(target)
        if readonly:
            flags = "mode=ro"
            if write_problem(path.parent) is not None:   # a real probe: root passes os.access on a read-only mount
                # In a read-only folder SQLite cannot create the WAL's shared-memory file. Without a WAL the
                # file is opened immutable; with one (copied while a writer had it open) the pair is read from
                # a private copy, since immutable mode would ignore the WAL's transactions.
                wal = path.with_name(path.name + "-wal")
                if wal.exists() and wal.stat().st_size > 0:
                    path = _private_copy(path, wal)
                else:
                    flags = "mode=ro&immutable=1"
            db = sqlite3.connect(f"file:{path}?{flags}", uri=True, timeout=60, check_same_thread=False)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(path), timeout=60, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.row_factory = sqlite3.Row
        return db

    @staticmethod
    def begin(db: Any) -> None:
        db.execute("BEGIN IMMEDIATE")   # also serialises migrators: one writer at a time

    @staticmethod
    def has_table(db: Any, name: str) -> bool:
        return bool(db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchall())

    @classmethod
    def is_storage_failure(cls, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and bool(cls.STORAGE_FAILURE.search(str(exc)))

    @classmethod
    def is_read_failure(cls, exc: BaseException) -> bool:
        # "file is not a database" and the like (not OperationalError) are the file's fault too
        return not isinstance(exc, sqlite3.OperationalError) or cls.is_storage_failure(exc)


# -- PostgreSQL -------------------------------------------------------------------------------------------
def redact_url(url: str) -> str:
    """A database URL fit to print: the password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _redact_text(text: str, url: str | None) -> str:
    """``text`` (an error message) without the password of ``url`` in it."""
    if not url:
        return text
    password = urlsplit(url).password
    text = text.replace(url, redact_url(url))
    if password:
        text = text.replace(password, "***").replace(unquote(password), "***")
    return text


def lock_key(name: str) -> int:
    """The 64-bit advisory-lock key of a lock name (the same on every machine)."""
    return int.from_bytes(hashlib.sha256(f"kb-registry:{name}".encode()).digest()[:8], "big", signed=True)


class _PgRow(tuple):
    """A result row read like ``sqlite3.Row``: by position, by column name, ``keys()`` and ``dict(row)``."""

    _index: dict[str, int]

    def __new__(cls, values: Sequence[Any], index: dict[str, int]) -> _PgRow:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def _pg_row_factory(cursor: Any) -> Any:
    index = {c.name: i for i, c in enumerate(cursor.description or ())}
    return lambda values: _PgRow(values, index)


@lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    """SQLite-flavoured SQL as psycopg sends it: ``?`` -> ``%s`` outside quotes, ``%`` -> ``%%``,
    ``INSERT OR IGNORE`` -> ``ON CONFLICT DO NOTHING``."""
    head = sql.lstrip()[:32].upper()
    if head.startswith("INSERT OR REPLACE"):
        raise ValueError("INSERT OR REPLACE is SQLite's own: write INSERT ... ON CONFLICT(key) DO UPDATE")
    if head.startswith("INSERT OR IGNORE"):
        sql = re.sub(r"(?i)^\s*INSERT\s+OR\s+IGNORE", "INSERT", sql) + " ON CONFLICT DO NOTHING"
    out: list[str] = []
    quote = ""
    for ch in sql:
        if ch == "%":
            out.append("%%")
            continue
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        out.append(ch)
    return "".join(out)


#: Schema types as PostgreSQL spells them: 64-bit integers (times run past 2038), double precision, bytes,
#: and text compared byte by byte like SQLite (``COLLATE "C"``: the same ORDER BY on both).
_PG_TYPES = (
    (re.compile(r"\bINTEGER PRIMARY KEY( AUTOINCREMENT)?\b"), "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    (re.compile(r"\bTEXT\b"), 'TEXT COLLATE "C"'),
)


class _PgConnection:
    """A psycopg connection (autocommit; transactions are explicit) with the sqlite3 calls the registry makes."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(_pg_sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [tuple(r) for r in rows]
        if rows:
            with self.conn.cursor() as cur:
                cur.executemany(_pg_sql(sql), rows)

    @property
    def closed(self) -> bool:
        """The server ended the session (restart, failover, idle kill) or it was closed here."""
        return bool(self.conn.closed or getattr(self.conn, "broken", False))

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR)

    def close(self) -> None:
        self.conn.close()


def _numeric_loader() -> Any:
    """NUMERIC results (PostgreSQL's SUM of BIGINT) as int when whole, else float, as SQLite returns them."""
    from psycopg.adapt import Loader

    class NumericLoader(Loader):
        def load(self, data: Any) -> Any:
            text = bytes(data).decode()
            try:
                return int(text)
            except ValueError:
                return float(text)

    return NumericLoader


class _Postgres(_Dialect):
    """A registry on a PostgreSQL server (``KB_REGISTRY_URL``), shared by ingesters and apps on many machines."""

    name = "postgresql"
    shared_locks = True
    READ_FIX = "check that the PostgreSQL server of KB_REGISTRY_URL is running and reachable, then try again"

    @staticmethod
    def _psycopg() -> Any:
        try:
            import psycopg
        except ImportError as exc:
            raise StoreUnavailable("KB_REGISTRY_URL names a PostgreSQL registry but psycopg is not installed; "
                                   "install it with `pip install -r requirements.txt`") from exc
        return psycopg

    @classmethod
    def errors(cls) -> tuple[Any, Any]:
        psycopg = cls._psycopg()
        return psycopg.Error, psycopg.Error

    @classmethod
    def connect(cls, target: Any, readonly: bool) -> _PgConnection:
        psycopg = cls._psycopg()
        who = f"kb {os.getpid()}@{socket.gethostname()}"[:63]   # names a lock's holder (pg_stat_activity)
        conn = psycopg.connect(str(target), autocommit=True, row_factory=_pg_row_factory, connect_timeout=15,
                               application_name=who)
        conn.adapters.register_loader("numeric", _numeric_loader())
        if readonly:
            conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        return _PgConnection(conn)

    @staticmethod
    def lock_migrations(db: Any) -> None:
        db.execute("SELECT pg_advisory_xact_lock(?)", (lock_key("migrate"),))

    @staticmethod
    def ddl(statement: str) -> str:
        for pattern, replacement in _PG_TYPES:
            statement = pattern.sub(replacement, statement)
        return statement

    @staticmethod
    def has_table(db: Any, name: str) -> bool:
        return db.execute("SELECT to_regclass(?)", (name,)).fetchall()[0][0] is not None

    @classmethod
    def is_storage_failure(cls, exc: BaseException) -> bool:
        return isinstance(exc, cls._psycopg().OperationalError)   # the server went away, the disk is full, ...


def _marks(items: Sequence[Any]) -> str:
    return ",".join("?" * len(items))


#: A granted session-level advisory lock in ``pg_locks l``, by the two halves of its key (``_held_lock_params``).
_HELD_LOCK = ("l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
              "AND l.classid::bigint = ? AND l.objid::bigint = ?")


def _held_lock_params(name: str) -> tuple[int, int]:
    """The (classid, objid) halves of lock ``name``'s key, as ``pg_locks`` shows them."""
    key = lock_key(name) & 0xFFFFFFFFFFFFFFFF
    return key >> 32, key & 0xFFFFFFFF


def _parts(items: Sequence[Any]) -> Iterator[list[Any]]:
    items = list(items)
    for i in range(0, len(items), _BATCH):
        yield items[i:i + _BATCH]


class Registry:
    """Typed access to the registry database (one connection, thread-safe, reentrant transactions).

    ``path`` is the SQLite file (``KB_DATA_DIR/registry.sqlite``); with ``url`` (``KB_REGISTRY_URL``,
    ``postgresql://…``) the tables are on that PostgreSQL server instead, and ``path`` only places the
    snapshots, which stay on the filesystem beside it either way."""

    def __init__(self, path: Path, readonly: bool = False, url: str | None = None,
                 auto_migrate: bool = True) -> None:
        self.path = Path(path)
        self.url = url or None
        self._dialect: type[_Dialect] = _Postgres if self.url else _SQLite
        #: Where the registry is, fit to print (a URL's password is never shown).
        self.where = redact_url(self.url) if self.url else str(self.path)
        if readonly and not self.url and not self.path.exists():
            raise NoIndex(f"no index at {self.path.parent} (no registry); build it with `python -m ingest run` "
                          "or point KB_DATA_DIR at an existing index")
        error, _ = self._dialect.errors()
        try:
            self._db = self._dialect.connect(self.url or self.path, readonly)
        except error as exc:
            raise StoreUnavailable(f"cannot open the registry {self.where}: {self._redact(exc)}") from exc
        self._lock = threading.RLock()
        self._depth = 0
        self._readonly = readonly
        if readonly and self.url and not self.has_schema():
            self.close()
            raise NoIndex(f"no index in the registry {self.where} (no tables yet); build it with "
                          "`python -m ingest run` or point KB_REGISTRY_URL at an existing registry")
        if not readonly and auto_migrate:
            self.migrate()

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._dialect.name

    def close(self) -> None:
        self._db.close()

    def _redact(self, exc: BaseException) -> str:
        return _redact_text(str(exc), self.url)

    def _begin(self) -> None:
        """BEGIN, on a new session when the old one turns out to be gone (it shows only when used)."""
        self._reconnect_if_lost()
        try:
            self._dialect.begin(self._db)
        except Exception:
            if not self._reconnect_if_lost():
                raise
            self._dialect.begin(self._db)

    def _reconnect_if_lost(self) -> bool:
        """A new PostgreSQL session when the old one is gone (server restarted, connection killed), outside a
        transaction only; True when it reconnected. Session advisory locks of the lost session are gone too."""
        if not self.url or self._depth or not getattr(self._db, "closed", False):
            return False
        error, _ = self._dialect.errors()
        try:
            self._db = self._dialect.connect(self.url, self._readonly)
        except error:
            return False
        log.warning("reconnected to the registry %s after its session was lost", self.where)
        return True

    # -- plumbing ---------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic write; nested calls join the outer transaction."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            try:
                self._begin()
                self._depth = 1
                yield
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:  # SQLite already rolled back e.g. a COMMIT that hit a full disk
                    self._db.execute("ROLLBACK")
                if self._dialect.is_storage_failure(exc):
                    raise StoreUnavailable(f"cannot write the registry {self.where}: {self._redact(exc)}; free disk "
                                           "space or fix the data directory, then run the same command again") from exc
                raise
            finally:
                self._depth = 0

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of a query, each read by position or column name (``sqlite3.Row`` or the same on PostgreSQL)."""
        _, database_error = self._dialect.errors()
        with self._lock:
            self._reconnect_if_lost()
            try:
                return list(self._db.execute(sql, params).fetchall())
            except database_error as first:
                failure: BaseException = first
            if self._reconnect_if_lost():      # the session died under this very query: once more
                try:
                    return list(self._db.execute(sql, params).fetchall())
                except database_error as again:
                    failure = again
            if not self._dialect.is_read_failure(failure):
                raise failure
            raise StoreUnavailable(f"cannot read the registry {self.where}: {self._redact(failure)}; "
                                   f"{self._dialect.READ_FIX}") from failure

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self._rows(sql, params)
        return rows[0][0] if rows else None

    def _write(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.transaction():
            self._db.execute(sql, params)

    def _write_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.transaction():
            self._db.executemany(sql, rows)

    def migrate(self) -> list[int]:
        """Apply the schema migrations this registry lacks, in one transaction; returns the versions applied.

        On PostgreSQL a transaction-level advisory lock makes a second migrator wait for the first."""
        applied: list[int] = []
        with self.transaction():
            self._dialect.lock_migrations(self._db)
            self._db.execute(self._dialect.ddl("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)"))
            have = int(self.get_meta("schema_version", "0") or 0)
            for m in MIGRATIONS:
                if m.version > have:
                    for statement in m.statements:
                        self._db.execute(self._dialect.ddl(statement))
                    applied.append(m.version)
            if applied:
                self.set_meta("schema_version", str(LATEST))
        return applied

    def has_schema(self) -> bool:
        """Whether the registry's tables exist (a fresh PostgreSQL database, or one opened with
        ``auto_migrate=False``, has none yet)."""
        with self._lock:
            return self._dialect.has_table(self._db, "meta")

    def schema_version(self) -> int:
        """The schema version of the registry (0 before any migration)."""
        if not self.has_schema():
            return 0
        return int(self.get_meta("schema_version", "0") or 0)

    # -- locks across machines (PostgreSQL) --------------------------------------------------
    @property
    def shared_locks(self) -> bool:
        """Whether ``try_lock`` is available: a session-level advisory lock on the PostgreSQL server."""
        return self._dialect.shared_locks

    def try_lock(self, name: str) -> bool:
        """Take the session-level advisory lock ``name`` on this connection, without waiting; False when another
        session holds it. Held until ``unlock`` or until the connection ends (``close``, or the process dies)."""
        self._need_shared_locks()
        return bool(self._one("SELECT pg_try_advisory_lock(?)", (lock_key(name),)))

    def unlock(self, name: str) -> None:
        """Release the advisory lock ``name`` taken with ``try_lock``."""
        self._need_shared_locks()
        self._one("SELECT pg_advisory_unlock(?)", (lock_key(name),))

    def lock_holder(self, name: str) -> str | None:
        """Who holds the advisory lock ``name``: ``pid@host`` of the process whose connection has it, if known."""
        self._need_shared_locks()
        rows = self._rows("SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                          f"WHERE {_HELD_LOCK}", _held_lock_params(name))
        name_ = str(rows[0][0] or "") if rows else ""
        return name_.removeprefix("kb ") or None

    def lock_session(self, name: str) -> int | None:
        """The server process id of the session holding the advisory lock ``name`` (None when free)."""
        self._need_shared_locks()
        got = self._one(f"SELECT l.pid FROM pg_locks l WHERE {_HELD_LOCK}", _held_lock_params(name))
        return int(got) if got is not None else None

    def session_id(self) -> int | None:
        """This connection's server process id (PostgreSQL)."""
        self._need_shared_locks()
        got = self._one("SELECT pg_backend_pid()")
        return int(got) if got is not None else None

    def holds_lock(self, name: str) -> bool:
        """Whether this connection's session still holds the advisory lock ``name`` (False after the session
        was lost: the next query runs on a new session, which holds nothing)."""
        self._need_shared_locks()
        return bool(self._one(f"SELECT COUNT(*) FROM pg_locks l WHERE {_HELD_LOCK} AND l.pid = pg_backend_pid()",
                              _held_lock_params(name)))

    def _need_shared_locks(self) -> None:
        if not self._dialect.shared_locks:
            raise NotImplementedError(f"advisory locks need a PostgreSQL registry, not {self.dialect}")

    # -- meta -------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        value = self._one("SELECT value FROM meta WHERE key=?", (key,))
        return default if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        self._write("INSERT INTO meta (key, value) VALUES (?,?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    (key, value))

    def generation(self) -> int:
        """A counter bumped whenever indexed content changes (for caches such as BM25)."""
        return int(self.get_meta("generation", "0") or 0)

    def bump_generation(self) -> None:
        """Tell every reader (BM25 caches, long-lived retrievers) that indexed content changed."""
        self._write("INSERT INTO meta (key, value) VALUES ('generation', '1') ON CONFLICT(key) DO UPDATE SET "
                    "value=CAST(CAST(meta.value AS INTEGER) + 1 AS TEXT)")

    def index_state(self) -> tuple[int, int]:
        """(generation, number of indexed versions): what changes when ingest indexes or supersedes a version."""
        n = self._one("SELECT COUNT(*) FROM versions WHERE status='indexed'")
        return self.generation(), int(n or 0)

    # -- documents --------------------------------------------------------------------------
    def document(self, doc_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM documents WHERE doc_id=?", (doc_id,))
        return dict(rows[0]) if rows else None

    def documents(self, source: str | None = None) -> list[dict[str, Any]]:
        if source:
            return [dict(r) for r in self._rows("SELECT * FROM documents WHERE source=? ORDER BY url", (source,))]
        return [dict(r) for r in self._rows("SELECT * FROM documents ORDER BY source, url")]

    def documents_at(self, url_or_location: str) -> list[dict[str, Any]]:
        """Documents whose cited URL or fetched location is exactly this."""
        return [dict(r) for r in self._rows("SELECT * FROM documents WHERE url=? OR location=?",
                                            (url_or_location, url_or_location))]

    def url_owner(self, url: str) -> str | None:
        """The source whose documents are cited under this URL (trailing slash ignored), if any."""
        want = (url or "").rstrip("/")
        if not want:
            return None
        rows = self._rows("SELECT source FROM documents WHERE url=? OR url=? ORDER BY first_seen LIMIT 1",
                          (want, want + "/"))
        return str(rows[0][0]) if rows else None

    def copies_of(self, doc_id: str) -> list[dict[str, Any]]:
        """Documents ingest recorded as copies of ``doc_id`` (doc_id, title, publisher, url, duplicate_kind)."""
        rows = self._rows("SELECT doc_id, title, publisher, url, duplicate_kind FROM documents WHERE duplicate_of=? "
                          "ORDER BY publisher, url", (doc_id,))
        return [{k: (r[k] or "") for k in r.keys()} for r in rows]

    def duplicate_documents(self) -> list[dict[str, Any]]:
        """Every document folded into another one (doc_id, title, url, publisher, source)."""
        return [dict(r) for r in self._rows("SELECT doc_id, title, url, publisher, source FROM documents "
                                            "WHERE duplicate_of IS NOT NULL ORDER BY doc_id")]

    def documents_sharing_url(self, doc_id: str, url: str) -> list[dict[str, Any]]:
        """Other canonical documents that cite the same URL (trailing slash ignored), by publication date."""
        want = (url or "").rstrip("/")
        rows = self._rows("SELECT doc_id, title, published, url FROM documents WHERE duplicate_of IS NULL "
                          "AND doc_id != ? ORDER BY published, doc_id", (doc_id,))
        return [dict(r) for r in rows if want and (r["url"] or "").rstrip("/") == want]

    def document_sources(self) -> set[str]:
        """Source names that documents are recorded under."""
        return {r[0] for r in self._rows("SELECT DISTINCT source FROM documents")}

    def _column_where_in(self, select: str, table: str, key: str, values: Sequence[str]) -> list[str]:
        """``select`` of the rows of ``table`` whose ``key`` is one of ``values`` (batched), sorted."""
        out: list[str] = []
        for part in _parts(values):
            out += [r[0] for r in self._rows(f"SELECT {select} FROM {table} WHERE {key} IN ({_marks(part)})", part)]
        return sorted(out)

    def doc_ids_of_sources(self, names: Sequence[str]) -> list[str]:
        return self._column_where_in("doc_id", "documents", "source", names)

    def copies_outside(self, doc_ids: Sequence[str]) -> list[str]:
        """Documents that are copies of one of ``doc_ids`` without being among them, oldest first."""
        docs = set(doc_ids)
        rows = self._rows("SELECT doc_id, duplicate_of FROM documents WHERE duplicate_of IS NOT NULL "
                          "ORDER BY first_seen, doc_id")
        return [r[0] for r in rows if r[1] in docs and r[0] not in docs]

    def current_signatures(self) -> list[tuple[str, str, bytes]]:
        """(doc_id, exact key, MinHash signature) of every canonical document's current version, oldest first."""
        rows = self._rows(
            "SELECT d.doc_id, v.signature, v.meta FROM documents d JOIN versions v ON v.doc_id=d.doc_id "
            "WHERE d.duplicate_of IS NULL AND v.valid_to=? AND v.signature IS NOT NULL "
            "ORDER BY d.first_seen, d.doc_id", (FOREVER,))
        return [(r["doc_id"], json.loads(r["meta"] or "{}").get("exact_key", ""), bytes(r["signature"])) for r in rows]

    def upsert_document(self, doc: DocumentRecord) -> None:
        """Insert a document, or update everything but its first-seen time and location."""
        self._write(
            "INSERT INTO documents (doc_id, source, url, location, title, publisher, author, doctype, language,"
            " published, first_seen, last_checked, duplicate_of, duplicate_kind, duplicate_score, etag,"
            " last_modified) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(doc_id) DO UPDATE SET"
            " source=excluded.source, url=excluded.url, title=excluded.title, publisher=excluded.publisher,"
            " author=excluded.author, doctype=excluded.doctype, language=excluded.language,"
            " published=excluded.published, last_checked=excluded.last_checked, duplicate_of=excluded.duplicate_of,"
            " duplicate_kind=excluded.duplicate_kind, duplicate_score=excluded.duplicate_score, etag=excluded.etag,"
            " last_modified=excluded.last_modified",
            (doc.doc_id, doc.source, doc.url, doc.location, doc.title, doc.publisher, doc.author, doc.doctype,
             doc.language, doc.published, doc.checked, doc.checked, doc.duplicate_of, doc.duplicate_kind,
             doc.duplicate_score, doc.etag, doc.last_modified))

    def touch_document(self, doc_id: str, checked: str, etag: str | None = None,
                       last_modified: str | None = None) -> None:
        """Record that a document was checked and had not changed (keeping validators it did not resend)."""
        self._write("UPDATE documents SET last_checked=?, etag=COALESCE(?, etag), "
                    "last_modified=COALESCE(?, last_modified) WHERE doc_id=?", (checked, etag, last_modified, doc_id))

    def set_duplicate_of(self, doc_id: str, canonical: str | None) -> None:
        """Fold a document into ``canonical``, or make it canonical itself (None)."""
        if canonical is None:
            self._write("UPDATE documents SET duplicate_of=NULL, duplicate_kind=NULL, duplicate_score=NULL "
                        "WHERE doc_id=?", (doc_id,))
        else:
            self._write("UPDATE documents SET duplicate_of=? WHERE doc_id=?", (canonical, doc_id))

    # -- versions and chunks ----------------------------------------------------------------
    def versions(self, doc_id: str) -> list[VersionRow]:
        rows = self._rows("SELECT * FROM versions WHERE doc_id=? ORDER BY valid_from", (doc_id,))
        return [self._version(r) for r in rows]

    def version(self, version_id: str) -> VersionRow | None:
        rows = self._rows("SELECT * FROM versions WHERE version_id=?", (version_id,))
        return self._version(rows[0]) if rows else None

    def latest_version(self, doc_id: str) -> VersionRow | None:
        rows = self._rows("SELECT * FROM versions WHERE doc_id=? ORDER BY valid_from DESC LIMIT 1", (doc_id,))
        return self._version(rows[0]) if rows else None

    def current_version(self, doc_id: str) -> VersionRow | None:
        """The indexed version valid now, if any."""
        rows = self._rows("SELECT * FROM versions WHERE doc_id=? AND valid_to=? AND status='indexed'",
                          (doc_id, FOREVER))
        return self._version(rows[0]) if rows else None

    def pending_version_ids(self) -> list[str]:
        """Versions a killed run left ``pending``, oldest first."""
        return [r[0] for r in self._rows("SELECT version_id FROM versions WHERE status='pending' ORDER BY valid_from")]

    @staticmethod
    def _version(r: Any) -> VersionRow:
        return VersionRow(r["version_id"], r["doc_id"], r["text_sha"], r["snapshot_sha"], r["retrieved"],
                          r["valid_from"], r["valid_to"], r["title"] or "", r["language"] or "und",
                          r["published"] or "", r["effective_date"] or "", r["status"], r["n_chunks"],
                          json.loads(r["meta"] or "{}"))

    def version_text(self, version_id: str) -> str:
        """The stored text of a version (what citation offsets point into), hash-checked."""
        rows = self._rows("SELECT text, text_sha FROM versions WHERE version_id=?", (version_id,))
        if not rows:
            raise SnapshotError(f"version {version_id} is not in the registry")
        text = rows[0]["text"]
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != rows[0]["text_sha"]:
            raise SnapshotError(f"the stored text of version {version_id} does not match its SHA-256; "
                                "re-ingest the source to restore it")
        return str(text)

    def stored_versions(self) -> Iterator[dict[str, Any]]:
        """Every version with its stored text and hashes (for ``ingest verify``), by version id."""
        for r in self._rows("SELECT version_id, doc_id, text, text_sha, snapshot_sha, status FROM versions "
                            "ORDER BY version_id"):
            yield dict(r)

    def add_version(self, version: NewVersion, chunks: Sequence[NewChunk]) -> list[str]:
        """Write a version and its chunks in one transaction; returns the chunk ids."""
        v = version
        ids = [chunk_id_for(v.version_id, c.seq) for c in chunks]
        with self.transaction():
            self._db.execute(
                "INSERT INTO versions (version_id, doc_id, text_sha, snapshot_sha, retrieved, valid_from, valid_to,"
                " title, language, published, effective_date, status, n_chunks, text, meta, signature)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (v.version_id, v.doc_id, v.text_sha, v.snapshot_sha, v.retrieved, v.valid_from, v.valid_to, v.title,
                 v.language, v.published, v.effective_date, v.status, len(chunks), v.text,
                 json.dumps(v.meta, ensure_ascii=False), v.signature))
            self._insert_chunks(v.version_id, v.doc_id, chunks)
        return ids

    def _insert_chunks(self, version_id: str, doc_id: str, chunks: Sequence[NewChunk]) -> None:
        self._db.executemany(
            'INSERT INTO chunks (chunk_id, version_id, doc_id, seq, start, "end", language, text)'
            " VALUES (?,?,?,?,?,?,?,?)",
            [(chunk_id_for(version_id, c.seq), version_id, doc_id, c.seq, c.start, c.end, c.language, c.text)
             for c in chunks])

    def rechunk_pending(self, version_id: str, doc_id: str, chunks: Sequence[NewChunk]) -> None:
        """Give a version without chunks (a former copy) its chunks and make it ``pending`` to be indexed."""
        with self.transaction():
            self._insert_chunks(version_id, doc_id, chunks)
            self._db.execute("UPDATE versions SET status='pending', n_chunks=? WHERE version_id=?",
                             (len(chunks), version_id))

    def mark_indexed(self, version_id: str, retire: Sequence[tuple[str, int]] = ()) -> None:
        """The last step of indexing a version: retire the versions it supersedes (id, valid until), mark it
        ``indexed`` and bump the generation, in one transaction."""
        with self.transaction():
            self._db.executemany("UPDATE versions SET valid_to=? WHERE version_id=?",
                                 [(until, vid) for vid, until in retire])
            self._db.execute("UPDATE versions SET status='indexed' WHERE version_id=?", (version_id,))
            self.bump_generation()

    def chunks(self, version_id: str | None = None) -> list[ChunkRow]:
        if version_id:
            rows = self._rows("SELECT * FROM chunks WHERE version_id=? ORDER BY seq", (version_id,))
        else:
            rows = self._rows("SELECT * FROM chunks ORDER BY version_id, seq")
        return [ChunkRow(r["chunk_id"], r["version_id"], r["doc_id"], r["seq"], r["start"], r["end"],
                         r["language"] or "und", r["text"]) for r in rows]

    def chunk_ids_of(self, doc_ids: Sequence[str]) -> list[str]:
        return self._column_where_in("chunk_id", "chunks", "doc_id", doc_ids)

    def chunk_count(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM chunks") or 0)

    def chunk_texts(self, chunk_ids: Sequence[str]) -> dict[str, str]:
        """The stored texts of these chunks, by chunk id (those that exist)."""
        out: dict[str, str] = {}
        for part in _parts(chunk_ids):
            out.update((r[0], r[1]) for r in self._rows(
                f"SELECT chunk_id, text FROM chunks WHERE chunk_id IN ({_marks(part)})", part))
        return out

    def chunk_text_at(self, offset: int) -> str:
        """The text of the chunk at this position in chunk-id order (for sampling)."""
        return str(self._one("SELECT text FROM chunks ORDER BY chunk_id LIMIT 1 OFFSET ?", (int(offset),)) or "")

    def all_chunk_ids(self) -> set[str]:
        return {r[0] for r in self._rows("SELECT chunk_id FROM chunks")}

    def indexed_chunk_ids(self) -> set[str]:
        return {r[0] for r in self._rows(
            "SELECT c.chunk_id FROM chunks c JOIN versions v ON v.version_id=c.version_id WHERE v.status='indexed'")}

    def catalogue_rows(self) -> list[Any]:
        """Every chunk of an indexed version with what retrieval filters on, by chunk id (texts: ``chunk_texts``)."""
        rows = self._rows(
            'SELECT c.chunk_id, c.version_id, c.doc_id, c.start, c."end" AS "end", c.language, '
            "v.valid_from, v.valid_to, v.published, v.retrieved, v.language AS doc_language, "
            "COALESCE(NULLIF(v.title, ''), d.title, '') AS title, d.source, d.url, d.publisher, d.doctype "
            "FROM chunks c JOIN versions v ON v.version_id = c.version_id JOIN documents d ON d.doc_id = c.doc_id "
            "WHERE v.status = 'indexed' ORDER BY c.chunk_id")
        return rows   # read by column name; not copied into dicts (a million of them would cost GiBs)

    # -- summaries for status, the overview and the sources page -----------------------------
    def index_counts(self) -> dict[str, int]:
        """Indexed (current) chunks, canonical documents, indexed versions and duplicates."""
        return {
            "chunks": int(self._one("SELECT COUNT(*) FROM chunks c JOIN versions v ON v.version_id=c.version_id "
                                    "WHERE v.status='indexed' AND v.valid_to=?", (FOREVER,)) or 0),
            "documents": int(self._one("SELECT COUNT(*) FROM documents WHERE duplicate_of IS NULL") or 0),
            "duplicates": int(self._one("SELECT COUNT(*) FROM documents WHERE duplicate_of IS NOT NULL") or 0),
            "versions": int(self._one("SELECT COUNT(*) FROM versions WHERE status='indexed'") or 0),
        }

    def indexed_chunk_total(self) -> int:
        """Chunks of every indexed version (current and past)."""
        return int(self._one("SELECT COUNT(*) FROM chunks c JOIN versions v ON v.version_id=c.version_id "
                             "WHERE v.status='indexed'") or 0)

    def indexed_values(self) -> dict[str, set[Any]]:
        """Distinct values over indexed versions with passages: languages (of versions and chunks), doctypes,
        publishers, sources, publication dates and validity starts."""
        indexed = "FROM versions v JOIN documents d ON d.doc_id=v.doc_id WHERE v.status='indexed' AND v.n_chunks > 0"

        def distinct(column: str) -> set[Any]:
            return {r[0] for r in self._rows(f"SELECT DISTINCT {column} {indexed}") if r[0] is not None}

        chunk_langs = {r[0] for r in self._rows(
            "SELECT DISTINCT c.language FROM chunks c JOIN versions v ON v.version_id=c.version_id "
            "WHERE v.status='indexed'") if r[0]}
        return {"languages": distinct("v.language") | chunk_langs, "doctypes": distinct("d.doctype"),
                "publishers": distinct("d.publisher"), "sources": distinct("d.source"),
                "published": distinct("v.published"), "valid_from": distinct("v.valid_from")}

    def version_stats(self) -> dict[str, dict[str, Any]]:
        """Per document: versions (n), indexed versions, last retrieval, current chunks and current version id."""
        rows = self._rows(
            "SELECT doc_id, COUNT(*) AS n, SUM(CASE WHEN status='indexed' THEN 1 ELSE 0 END) AS n_indexed, "
            "MAX(retrieved) AS last, SUM(CASE WHEN status='indexed' AND valid_to=? THEN n_chunks ELSE 0 END) AS chunks, "
            "MAX(CASE WHEN status='indexed' AND valid_to=? THEN version_id END) AS current "
            "FROM versions GROUP BY doc_id", (FOREVER, FOREVER))
        return {r["doc_id"]: dict(r) for r in rows}

    def canonical_counts_by_source(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self._rows(
            "SELECT source, COUNT(*) FROM documents WHERE duplicate_of IS NULL GROUP BY source")}

    def current_canonical_versions(self) -> list[dict[str, Any]]:
        """Indexed versions of canonical documents (version_id, n_chunks, language, doctype)."""
        return [dict(r) for r in self._rows(
            "SELECT v.version_id, v.n_chunks, v.language, d.doctype FROM versions v JOIN documents d "
            "ON d.doc_id=v.doc_id WHERE v.status='indexed' AND d.duplicate_of IS NULL")]

    def canonical_version_count(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM versions v JOIN documents d ON d.doc_id=v.doc_id "
                             "WHERE d.duplicate_of IS NULL") or 0)

    def canonical_version_rows(self, source: str | None = None) -> list[dict[str, Any]]:
        """Indexed versions of canonical documents with their document's metadata (no text), by document
        then validity start: version_id, doc_id, retrieved, valid_from, title, language, published, url,
        publisher, source, doctype (for "what changed" and the timeline)."""
        sql = ("SELECT v.version_id, v.doc_id, v.retrieved, v.valid_from, "
               "COALESCE(NULLIF(v.title, ''), d.title, '') AS title, "
               "COALESCE(NULLIF(v.language, ''), d.language, 'und') AS language, "
               "COALESCE(NULLIF(v.published, ''), d.published, '') AS published, "
               "d.url, d.publisher, d.source, d.doctype FROM versions v JOIN documents d ON d.doc_id=v.doc_id "
               "WHERE v.status='indexed' AND d.duplicate_of IS NULL")
        params: tuple[Any, ...] = ()
        if source is not None:
            sql, params = sql + " AND d.source=?", (source,)
        return [dict(r) for r in self._rows(sql + " ORDER BY v.doc_id, v.valid_from", params)]

    # -- deletion ---------------------------------------------------------------------------
    def delete_documents(self, doc_ids: Sequence[str], sources: Sequence[str] = (),
                         snapshots: Sequence[str] = (), note: dict[str, Any] | None = None) -> None:
        """Delete documents with their versions and chunks, source rows and snapshot rows, in one transaction;
        bumps the generation and records ``note`` as the last prune."""
        with self.transaction():
            for part in _parts(doc_ids):
                for table in ("chunks", "versions", "documents"):
                    self._db.execute(f"DELETE FROM {table} WHERE doc_id IN ({_marks(part)})", part)
            for part in _parts(sources):
                self._db.execute(f"DELETE FROM sources WHERE name IN ({_marks(part)})", part)
            for part in _parts(snapshots):
                self._db.execute(f"DELETE FROM snapshots WHERE sha256 IN ({_marks(part)})", part)
            self.bump_generation()
            if note is not None:
                self.set_meta("last_prune", json.dumps(note))

    # -- snapshots --------------------------------------------------------------------------
    def snapshot_path(self, sha: str) -> Path:
        return self.path.parent / "snapshots" / sha[:2] / f"{sha}.gz"

    def save_snapshot(self, content: bytes, url: str, retrieved: str, content_type: str = "") -> str:
        """Store raw bytes gzip-compressed under their SHA-256 (idempotent); returns the hash."""
        sha = hashlib.sha256(content).hexdigest()
        path = self.snapshot_path(sha)
        if not path.exists() or not self.snapshot_intact(sha):  # a damaged file is rewritten from good bytes
            path.parent.mkdir(parents=True, exist_ok=True)
            # One temp file per writer: two threads may store the same bytes (a copy served twice) at once.
            tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            with gzip.open(tmp, "wb", compresslevel=6) as fh:
                fh.write(content)
            tmp.replace(path)
        self._write("INSERT INTO snapshots (sha256, url, retrieved, content_type, size, path) VALUES (?,?,?,?,?,?) "
                    "ON CONFLICT(sha256) DO NOTHING",
                    (sha, url, retrieved, content_type, len(content), str(path.relative_to(self.path.parent))))
        return sha

    def snapshot(self, sha: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM snapshots WHERE sha256=?", (sha,))
        return dict(rows[0]) if rows else None

    def snapshots(self) -> list[dict[str, Any]]:
        """Every snapshot row (sha256, url, retrieved, content_type, size, path), by hash."""
        return [dict(r) for r in self._rows("SELECT * FROM snapshots ORDER BY sha256")]

    def locations_of_snapshot(self, sha: str) -> list[str]:
        """Where the documents whose versions refer to this snapshot were fetched or read from."""
        return [r[0] for r in self._rows("SELECT DISTINCT d.location FROM versions v JOIN documents d "
                                         "ON d.doc_id=v.doc_id WHERE v.snapshot_sha=? ORDER BY d.location", (sha,))]

    def snapshot_intact(self, sha: str) -> bool:
        """Whether the stored snapshot file exists and still matches its hash."""
        try:
            self.verify_snapshot(sha)
        except SnapshotError:
            return False
        return True

    def snapshot_shas_only_of(self, doc_ids: Sequence[str]) -> list[str]:
        """Snapshots that versions of these documents refer to and no other document's version does."""
        docs = set(doc_ids)
        mine: set[str] = set()
        elsewhere: set[str] = set()
        for doc_id, sha in self._rows("SELECT doc_id, snapshot_sha FROM versions WHERE snapshot_sha IS NOT NULL"):
            (mine if doc_id in docs else elsewhere).add(sha)
        return sorted(mine - elsewhere)

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
        return [dict(r) for r in self._rows("SELECT * FROM sources ORDER BY name")]

    def record_source(self, name: str, config: dict[str, Any], at: str, failed: bool,
                      last_error: str | None) -> None:
        """A source's health after a run: its config, last run, success or one more consecutive failure."""
        with self.transaction():
            self._db.execute("INSERT INTO sources (name, config, first_seen) VALUES (?,?,?) ON CONFLICT(name) DO UPDATE"
                             " SET config=excluded.config, removed_at=NULL",
                             (name, json.dumps(config, ensure_ascii=False, default=str), at))
            if failed:
                self._db.execute("UPDATE sources SET last_run=?, consecutive_failures=consecutive_failures+1, "
                                 "last_error=? WHERE name=?", (at, last_error, name))
            else:
                self._db.execute("UPDATE sources SET last_run=?, last_success=?, consecutive_failures=0, last_error=?"
                                 " WHERE name=?", (at, at, last_error, name))

    def mark_sources_removed(self, names: Sequence[str], at: str) -> None:
        """Sources no longer in the sources file (their documents stay until an explicit prune)."""
        self._write_many("UPDATE sources SET removed_at=COALESCE(removed_at, ?) WHERE name=?",
                         [(at, name) for name in names])

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        return [dict(r) for r in self._rows("SELECT * FROM runs ORDER BY started DESC LIMIT ?", (limit,))]

    def start_run(self, run_id: str, started: str, sources_file: str) -> None:
        self._write("INSERT INTO runs (run_id, started, sources_file, status) VALUES (?,?,?,?)",
                    (run_id, started, sources_file, "running"))

    def finish_run(self, run_id: str, finished: str, status: str, report: dict[str, Any]) -> None:
        self._write("UPDATE runs SET finished=?, status=?, report=? WHERE run_id=?",
                    (finished, status, json.dumps(report, ensure_ascii=False), run_id))


def open_registry(settings: Settings, readonly: bool = False, auto_migrate: bool = True) -> Registry:
    """The registry these settings name: PostgreSQL at ``KB_REGISTRY_URL`` when set, else the SQLite file
    under ``KB_DATA_DIR`` (snapshots are under ``KB_DATA_DIR`` either way)."""
    return Registry(settings.registry_path, readonly=readonly, url=settings.registry_url, auto_migrate=auto_migrate)


def registry_exists(settings: Settings) -> bool:
    """Whether these settings' registry has been created (the SQLite file exists; the PostgreSQL database has
    the registry's tables). ``StoreUnavailable`` when the PostgreSQL server cannot be reached."""
    if not settings.registry_url:
        return settings.registry_path.exists()
    reg = Registry(settings.registry_path, url=settings.registry_url, auto_migrate=False)
    try:
        return reg.has_schema()
    finally:
        reg.close()
