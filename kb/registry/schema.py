"""The registry's schema as numbered migrations, applied in order on open (``meta.schema_version``).

Each migration is a list of portable statements (SQLite and PostgreSQL both read them: no
``AUTOINCREMENT``, no ``WITHOUT ROWID``, ``"end"`` quoted). A registry written before migrations
existed holds exactly the tables of migration 1 (created with ``IF NOT EXISTS``), so it upgrades
in place. Add a migration at the end; never edit one that has shipped.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    """One schema step."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "sources, documents, versions, chunks, snapshots, runs, meta", (
        """CREATE TABLE IF NOT EXISTS sources (
            name TEXT PRIMARY KEY, config TEXT NOT NULL, first_seen TEXT, last_run TEXT, last_success TEXT,
            consecutive_failures INTEGER NOT NULL DEFAULT 0, last_error TEXT, removed_at TEXT)""",
        """CREATE TABLE IF NOT EXISTS documents (
            doc_id TEXT PRIMARY KEY, source TEXT NOT NULL, url TEXT NOT NULL, location TEXT NOT NULL, title TEXT,
            publisher TEXT, author TEXT, doctype TEXT, language TEXT, published TEXT, first_seen TEXT,
            last_checked TEXT, duplicate_of TEXT, duplicate_kind TEXT, duplicate_score REAL, etag TEXT,
            last_modified TEXT, item_hash TEXT)""",
        "CREATE INDEX IF NOT EXISTS documents_source ON documents(source)",
        """CREATE TABLE IF NOT EXISTS versions (
            version_id TEXT PRIMARY KEY, doc_id TEXT NOT NULL, text_sha TEXT NOT NULL, snapshot_sha TEXT,
            retrieved TEXT NOT NULL, valid_from INTEGER NOT NULL, valid_to INTEGER NOT NULL, title TEXT,
            language TEXT, published TEXT, effective_date TEXT, status TEXT NOT NULL, n_chunks INTEGER NOT NULL,
            text TEXT NOT NULL, meta TEXT, signature BLOB)""",
        "CREATE INDEX IF NOT EXISTS versions_doc ON versions(doc_id, valid_from)",
        """CREATE TABLE IF NOT EXISTS chunks (
            chunk_id TEXT PRIMARY KEY, version_id TEXT NOT NULL, doc_id TEXT NOT NULL, seq INTEGER NOT NULL,
            start INTEGER NOT NULL, "end" INTEGER NOT NULL, language TEXT, text TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS chunks_version ON chunks(version_id)",
        """CREATE TABLE IF NOT EXISTS snapshots (
            sha256 TEXT PRIMARY KEY, url TEXT NOT NULL, retrieved TEXT NOT NULL, content_type TEXT,
            size INTEGER, path TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS runs (
            run_id TEXT PRIMARY KEY, started TEXT NOT NULL, finished TEXT, sources_file TEXT, status TEXT,
            report TEXT)""",
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
    )),
    Migration(2, "index chunks by document and documents by duplicate_of (prune, copies)", (
        "CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id)",
        "CREATE INDEX IF NOT EXISTS documents_duplicate ON documents(duplicate_of)",
    )),
    Migration(3, "index versions by status (every app process counts the indexed ones once a second)", (
        "CREATE INDEX IF NOT EXISTS versions_status ON versions(status)",
    )),
)

#: The schema version a registry has after every migration.
LATEST = MIGRATIONS[-1].version
