"""The registry: snapshots (content-addressed, verified, thread-safe), writes through its typed methods,
transactions, and schema migrations, on SQLite and on a real PostgreSQL (``tests.fixtures.postgres``)."""
from __future__ import annotations

import gzip
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest

from kb.errors import SnapshotError
from kb.registry import Registry
from kb.registry.database import DocumentRecord, NewChunk, NewVersion
from kb.registry.ids import chunk_id_for, text_sha, version_id_for
from kb.registry.schema import LATEST, MIGRATIONS
from kb.times import FOREVER
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.registry_db import RegistryTarget, index_names, raw_connection, rows


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> RegistryTarget:
    """A registry not created yet: the SQLite file, or an empty PostgreSQL database (snapshots in tmp_path)."""
    if request.param == "sqlite":
        return RegistryTarget(tmp_path / "registry.sqlite")
    return RegistryTarget(tmp_path / "registry.sqlite", request.getfixturevalue("postgres_url"))


def test_same_snapshot_saved_by_many_threads_at_once(target: RegistryTarget, tmp_path: Path) -> None:
    """Regression: two items with identical bytes raced on one temp file (FileNotFoundError on rename)."""
    reg = target.open()
    for round_ in range(20):
        content = f"the same page served twice, round {round_}".encode() * 200
        with ThreadPoolExecutor(max_workers=4) as pool:
            shas = list(pool.map(lambda _, c=content: reg.save_snapshot(c, "http://x/a", "2026-01-01T00:00:00Z"),
                                 range(4)))
        assert len(set(shas)) == 1
        assert reg.read_snapshot(shas[0]) == content
    assert not list((tmp_path / "snapshots").rglob("*.tmp"))


def test_tampered_snapshot_is_reported(target: RegistryTarget) -> None:
    reg = target.open()
    sha = reg.save_snapshot(b"original evidence", "http://x/a", "2026-01-01T00:00:00Z")
    reg.verify_snapshot(sha)
    with gzip.open(reg.snapshot_path(sha), "wb") as fh:
        fh.write(b"altered evidence")
    with pytest.raises(SnapshotError, match="altered"):
        reg.verify_snapshot(sha)


# -- writes through the typed methods ---------------------------------------------------------------
T1, T2, T3 = "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"


def record(doc_id: str, checked: str = T1, **changes: object) -> DocumentRecord:
    base = DocumentRecord(doc_id=doc_id, source="src", url=f"https://example.org/{doc_id}",
                          location=f"https://example.org/{doc_id}?utm_source=feed", title=f"Title {doc_id}",
                          publisher="Example", author="A. Writer", doctype="news", language="en",
                          published="2026-01-01", checked=checked)
    return replace(base, **changes) if changes else base


def new_version(doc_id: str, text: str, valid_from: int, snapshot_sha: str | None = None) -> NewVersion:
    sha = text_sha(text)
    return NewVersion(version_id=version_id_for(doc_id, sha, valid_from), doc_id=doc_id, text=text, text_sha=sha,
                      snapshot_sha=snapshot_sha, retrieved=T1, valid_from=valid_from, title="t", language="en",
                      published="", meta={"exact_key": "k"})


def chunks_of(text: str) -> list[NewChunk]:
    """One chunk per sentence-ish part separated by '. '."""
    out, start = [], 0
    for seq, part in enumerate(text.split(". ")):
        out.append(NewChunk(seq, start, start + len(part), "en", part))
        start += len(part) + 2
    return out


def add(reg: Registry, doc_id: str, text: str, valid_from: int, snapshot_sha: str | None = None) -> NewVersion:
    v = new_version(doc_id, text, valid_from, snapshot_sha)
    reg.add_version(v, chunks_of(text))
    return v


def count(reg: Registry, table: str, where: str = "1=1", params: tuple = ()) -> int:
    return rows(reg, f"SELECT COUNT(*) FROM {table} WHERE {where}", params)[0][0]


@pytest.fixture
def reg(target: RegistryTarget) -> Iterator[Registry]:
    r = target.open()
    yield r
    r.close()


def test_upsert_document_inserts_then_updates_keeping_first_seen_and_location(reg: Registry) -> None:
    reg.upsert_document(record("d1", checked=T1))
    first = reg.document("d1")
    assert first is not None
    assert (first["first_seen"], first["last_checked"], first["title"]) == (T1, T1, "Title d1")
    assert first["location"] == "https://example.org/d1?utm_source=feed"

    reg.upsert_document(record("d1", checked=T2, title="New title", location="https://elsewhere.example/d1",
                               duplicate_of="d0", duplicate_kind="near", duplicate_score=0.9, etag='"e2"'))
    doc = reg.document("d1")
    assert doc is not None
    assert (doc["first_seen"], doc["last_checked"]) == (T1, T2)
    assert doc["location"] == "https://example.org/d1?utm_source=feed"
    assert (doc["title"], doc["duplicate_of"], doc["duplicate_kind"], doc["etag"]) == ("New title", "d0", "near", '"e2"')
    assert count(reg, "documents") == 1


def test_add_version_writes_pending_version_and_chunks_with_their_ids(reg: Registry) -> None:
    text = "First sentence here. Second sentence there. Third one"
    v = new_version("d1", text, 1000)
    ids = reg.add_version(v, chunks_of(text))
    assert ids == [chunk_id_for(v.version_id, seq) for seq in range(3)]
    stored = reg.version(v.version_id)
    assert stored is not None
    assert (stored.status, stored.n_chunks, stored.valid_from, stored.valid_to) == ("pending", 3, 1000, FOREVER)
    assert stored.meta == {"exact_key": "k"}
    assert reg.version_text(v.version_id) == text
    chunks = reg.chunks(v.version_id)
    assert [c.chunk_id for c in chunks] == ids
    assert all(c.text == text[c.start:c.end] and c.doc_id == "d1" for c in chunks)
    assert reg.pending_version_ids() == [v.version_id]
    assert reg.indexed_chunk_ids() == set() and reg.current_version("d1") is None
    assert reg.generation() == 0


def test_mark_indexed_retires_the_previous_version_and_bumps_the_generation(reg: Registry) -> None:
    v1 = add(reg, "d1", "Old text. Still old", 1000)
    reg.mark_indexed(v1.version_id)
    assert reg.generation() == 1
    assert reg.current_version("d1").version_id == v1.version_id  # type: ignore[union-attr]

    v2 = add(reg, "d1", "New text. Quite new", 2000)
    assert reg.current_version("d1").version_id == v1.version_id  # type: ignore[union-attr]  # v2 still pending
    reg.mark_indexed(v2.version_id, retire=[(v1.version_id, v2.valid_from)])
    old, new = reg.version(v1.version_id), reg.version(v2.version_id)
    assert old is not None and new is not None
    assert (old.status, old.valid_to) == ("indexed", 2000)
    assert (new.status, new.valid_to) == ("indexed", FOREVER)
    assert reg.current_version("d1").version_id == v2.version_id  # type: ignore[union-attr]
    assert reg.pending_version_ids() == []
    assert reg.index_state() == (2, 2)
    assert reg.indexed_chunk_ids() == set(reg.all_chunk_ids())


def test_nested_transaction_joins_the_outer_one(reg: Registry) -> None:
    with reg.transaction():
        reg.upsert_document(record("a"))
        with reg.transaction():
            reg.upsert_document(record("b"))
        # the inner block ended, but nothing is committed until the outer one does
        assert count(reg, "documents") == 0
        assert len(reg.documents()) == 2  # visible to the writing connection itself
    assert count(reg, "documents") == 2


def test_raise_inside_a_nested_transaction_rolls_everything_back(reg: Registry) -> None:
    reg.upsert_document(record("kept"))
    with pytest.raises(RuntimeError, match="boom"):
        with reg.transaction():
            reg.upsert_document(record("a"))
            add(reg, "a", "Some text. More text", 1000)
            with reg.transaction():
                reg.upsert_document(record("b"))
                reg.bump_generation()
                raise RuntimeError("boom")
    assert [d["doc_id"] for d in reg.documents()] == ["kept"]
    assert count(reg, "versions") == 0 and count(reg, "chunks") == 0
    assert reg.generation() == 0
    # the registry is usable afterwards
    reg.upsert_document(record("after"))
    assert count(reg, "documents") == 2


def test_raise_after_an_inner_transaction_also_undoes_it(reg: Registry) -> None:
    with pytest.raises(ValueError):
        with reg.transaction():
            with reg.transaction():
                reg.upsert_document(record("a"))
            raise ValueError("outer fails")
    assert reg.documents() == []


def test_delete_documents_removes_all_their_rows_and_bumps_the_generation(reg: Registry) -> None:
    sha_a = reg.save_snapshot(b"<html>a</html>", "https://example.org/a", T1, "text/html")
    sha_b = reg.save_snapshot(b"<html>b</html>", "https://example.org/b", T1, "text/html")
    for doc_id, sha, source in (("a", sha_a, "src-a"), ("b", sha_b, "src-b")):
        reg.upsert_document(record(doc_id, source=source))
        v1 = add(reg, doc_id, f"Text of {doc_id}. First version", 1000, sha)
        v2 = add(reg, doc_id, f"Text of {doc_id}. Second version", 2000, sha)
        reg.mark_indexed(v1.version_id)
        reg.mark_indexed(v2.version_id, retire=[(v1.version_id, 2000)])
        reg.record_source(source, {"name": source}, T1, failed=False, last_error=None)
    generation = reg.generation()
    b_rows = (count(reg, "chunks", "doc_id='b'"), count(reg, "versions", "doc_id='b'"))
    assert b_rows == (4, 2)

    reg.delete_documents(["a"], sources=["src-a"], snapshots=[sha_a], note={"documents": 1})

    for table in ("chunks", "versions", "documents"):
        assert count(reg, table, "doc_id='a'") == 0, table
    assert (count(reg, "chunks", "doc_id='b'"), count(reg, "versions", "doc_id='b'")) == b_rows
    assert [d["doc_id"] for d in reg.documents()] == ["b"]
    assert [s["name"] for s in reg.sources()] == ["src-b"]
    assert reg.snapshot(sha_a) is None and reg.snapshot(sha_b) is not None
    assert reg.generation() == generation + 1
    assert json.loads(reg.get_meta("last_prune") or "null") == {"documents": 1}


def test_record_source_counts_failures_until_a_success(reg: Registry) -> None:
    reg.record_source("s", {"name": "s", "url": "https://example.org/feed"}, T1, failed=True, last_error="HTTP 500")
    reg.record_source("s", {"name": "s", "url": "https://example.org/feed"}, T2, failed=True, last_error="timed out")
    (src,) = reg.sources()
    assert (src["first_seen"], src["last_run"], src["last_success"]) == (T1, T2, None)
    assert (src["consecutive_failures"], src["last_error"]) == (2, "timed out")
    assert json.loads(src["config"]) == {"name": "s", "url": "https://example.org/feed"}
    reg.mark_sources_removed(["s"], T2)
    assert reg.sources()[0]["removed_at"] == T2
    reg.record_source("s", {"name": "s"}, T3, failed=False, last_error=None)
    (src,) = reg.sources()
    assert (src["first_seen"], src["last_success"], src["consecutive_failures"], src["removed_at"]) == (T1, T3, 0, None)


# -- schema migrations ------------------------------------------------------------------------------
def test_fresh_registry_is_at_the_latest_schema_and_migrate_is_idempotent(target: RegistryTarget) -> None:
    path = target
    reg = target.open()
    assert reg.schema_version() == LATEST == MIGRATIONS[-1].version
    assert reg.get_meta("schema_version") == str(LATEST)
    before = index_names(path)
    assert {"chunks_doc", "documents_duplicate"} <= before
    assert reg.migrate() == []
    assert reg.migrate() == []
    reg.close()
    reopened = target.open()
    assert reopened.schema_version() == LATEST and reopened.migrate() == []
    assert index_names(path) == before
    reopened.close()


def test_registry_from_before_migrations_upgrades_on_open(target: RegistryTarget) -> None:
    path = target
    creates = [s for s in MIGRATIONS[0].statements if s.lstrip().upper().startswith("CREATE TABLE")]
    with raw_connection(path) as db:
        for statement in creates:
            db.execute(statement)
        db.execute("INSERT INTO documents (doc_id, source, url, location) VALUES ('old', 's', 'u', 'l')")
        db.execute("INSERT INTO meta (key, value) VALUES ('generation', '7')")
    assert rows(path, "SELECT value FROM meta WHERE key='schema_version'") == []
    assert "chunks_doc" not in index_names(path)

    reg = target.open()
    assert reg.schema_version() == LATEST
    assert {"chunks_doc", "documents_duplicate", "documents_source", "versions_doc"} <= index_names(path)
    assert [d["doc_id"] for d in reg.documents()] == ["old"] and reg.generation() == 7
    assert reg.migrate() == []
    reg.close()


def test_readonly_registry_does_not_migrate(target: RegistryTarget) -> None:
    with raw_connection(target) as db:
        for statement in MIGRATIONS[0].statements:
            db.execute(statement)
    reg = target.open(readonly=True)
    assert reg.schema_version() == 0
    reg.close()


# -- what must read the same on both databases ------------------------------------------------------
def test_ordering_sums_and_floats_read_as_on_sqlite(reg: Registry) -> None:
    """Text sorts byte by byte (PostgreSQL: COLLATE "C"), SUMs are ints, REAL keeps its double precision."""
    for doc_id in ("b", "B", "a", "é", "Z"):
        reg.upsert_document(record(doc_id, duplicate_score=0.9))
    assert [d["doc_id"] for d in reg.documents()] == sorted(["b", "B", "a", "é", "Z"])
    assert reg.document("a")["duplicate_score"] == 0.9  # type: ignore[index]
    v = add(reg, "a", "One. Two. Three", 1000)
    reg.mark_indexed(v.version_id)
    stats = reg.version_stats()["a"]
    assert (stats["n"], stats["n_indexed"], stats["chunks"], stats["current"]) == (1, 1, 3, v.version_id)
    assert all(type(stats[k]) is int for k in ("n", "n_indexed", "chunks"))
    assert reg.current_version("a").valid_to == FOREVER  # type: ignore[union-attr]  # past 2**31: BIGINT


# -- PostgreSQL only ---------------------------------------------------------------------------------
@pytest.fixture
def pg(tmp_path: Path, postgres_url: str) -> RegistryTarget:
    return RegistryTarget(tmp_path / "registry.sqlite", postgres_url)


def test_postgres_readonly_open_of_an_empty_database_is_no_index_and_never_writes(pg: RegistryTarget) -> None:
    from kb.errors import NoIndex

    with pytest.raises(NoIndex, match="no tables yet"):
        pg.open(readonly=True)
    pg.open().close()   # migrates
    ro = pg.open(readonly=True)
    assert ro.schema_version() == LATEST and ro.dialect == "postgresql"
    with pytest.raises(Exception, match="read-only transaction"):
        ro.set_meta("x", "1")
    assert ro.get_meta("x") is None
    ro.close()


def test_postgres_password_never_appears_in_messages(pg: RegistryTarget, postgres_server: PostgresServer) -> None:
    from kb.errors import StoreUnavailable
    from kb.registry import redact_url

    password = postgres_server.password
    reg = pg.open()
    assert password not in reg.where and "***" in reg.where
    reg.close()
    assert redact_url("postgresql://u:p%40ss@h:5/d") == "postgresql://u:***@h:5/d"
    assert redact_url("postgresql://u@h/d") == "postgresql://u@h/d"
    wrong = pg.url.replace(password, "not-" + password)  # type: ignore[union-attr]
    with pytest.raises(StoreUnavailable) as info:
        RegistryTarget(pg.path, wrong).open()
    assert "password authentication failed" in str(info.value) and password not in str(info.value)
    down = RegistryTarget(pg.path, f"postgresql://kb:{password}@127.0.0.1:1/x")
    with pytest.raises(StoreUnavailable) as info:
        down.open()
    assert password not in str(info.value) and "127.0.0.1" in str(info.value)


def test_postgres_concurrent_first_opens_migrate_once(pg: RegistryTarget) -> None:
    """Eight processes' worth of first opens at once: the advisory lock lets one migrate, the rest wait."""
    def open_and_close(_: int) -> int:
        r = pg.open()
        try:
            return r.schema_version()
        finally:
            r.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(open_and_close, range(8))) == [LATEST] * 8
    assert rows(pg, "SELECT value FROM meta WHERE key='schema_version'") == [(str(LATEST),)]


def test_postgres_advisory_lock_is_held_per_connection_and_freed_by_close(pg: RegistryTarget) -> None:
    a, b = pg.open(), pg.open()
    assert a.shared_locks and a.try_lock("ingest-run")
    assert not b.try_lock("ingest-run")
    assert b.lock_holder("ingest-run") is not None and "@" in str(b.lock_holder("ingest-run"))
    assert b.try_lock("ingest-watch")   # another name is another lock
    a.close()   # the connection ends: its locks go with it
    assert b.try_lock("ingest-run") and b.lock_holder("other") is None
    b.unlock("ingest-run")
    b.close()


def test_sqlite_registry_has_no_shared_locks(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry.sqlite")
    assert not reg.shared_locks and reg.dialect == "sqlite" and reg.where == str(tmp_path / "registry.sqlite")
    with pytest.raises(NotImplementedError):
        reg.try_lock("ingest-run")
    reg.close()
