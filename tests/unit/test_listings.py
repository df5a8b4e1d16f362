"""kb.listings over a small real registry: duplicates folded, filter values, per-source run errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from kb import listings as catalog
from kb.registry import Registry
from kb.times import FOREVER
from tests.fixtures.registry_db import raw_connection


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    reg = Registry(tmp_path / "registry.sqlite")
    with raw_connection(reg) as db:
        docs = [("d1", "news", "https://a.example/story", "Story", "Agency", "news", "en", "2025-03-04", None),
                ("d2", "news", "https://b.example/copy", "Story (copy)", "Paper", "news", "en", "2025-03-05", "d1"),
                ("d3", "terms", "https://c.example/tos", "Terms", "Corp, Inc.", "tos", "hi", "", None)]
        for doc_id, src, url, title, pub, dt, lang, published, dup in docs:
            db.execute("INSERT INTO documents (doc_id, source, url, location, title, publisher, doctype, language, "
                       "published, duplicate_of, duplicate_kind) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       (doc_id, src, url, url, title, pub, dt, lang, published, dup, "near" if dup else None))
        versions = [("v1", "d1", 1_700_000_000, FOREVER, "indexed", 2), ("v2", "d2", 1_700_000_000, FOREVER, "indexed", 0),
                    ("v3a", "d3", 1_690_000_000, 1_700_000_000, "indexed", 1), ("v3b", "d3", 1_700_000_000, FOREVER, "indexed", 1)]
        for vid, doc_id, vf, vt, status, n in versions:
            db.execute("INSERT INTO versions (version_id, doc_id, text_sha, snapshot_sha, retrieved, valid_from, valid_to, "
                       "language, published, status, n_chunks, text) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                       (vid, doc_id, "x", "s" * 64, "2026-01-01T00:00:00Z", vf, vt, "en" if doc_id != "d3" else "hi",
                        "2025-03-04" if doc_id == "d1" else "", status, n, "text"))
        for cid, vid, doc_id, lang in [("v1-0000", "v1", "d1", "en"), ("v1-0001", "v1", "d1", "es"),
                                       ("v3a-0000", "v3a", "d3", "hi"), ("v3b-0000", "v3b", "d3", "hi")]:
            db.execute('INSERT INTO chunks (chunk_id, version_id, doc_id, seq, start, "end", language, text) '
                       "VALUES (?,?,?,?,?,?,?,?)", (cid, vid, doc_id, 0, 0, 4, lang, "text"))
        db.execute("INSERT INTO sources (name, config, last_run, consecutive_failures, last_error) VALUES "
                   "('news', '{}', '2026-01-02T00:00:00Z', 1, 'timeout')")
        report = {"sources": [{"name": "news", "status": "partial",
                               "errors": [{"item": "https://a.example/x", "error": "HTTP 500; retry later"}]}]}
        db.execute("INSERT INTO runs VALUES ('r2', '2026-01-02T00:00:00Z', '2026-01-02T00:01:00Z', 's.yaml', "
                   "'partial', ?)", (json.dumps(report),))
        db.execute("INSERT INTO runs VALUES ('r1', '2026-01-01T00:00:00Z', '2026-01-01T00:01:00Z', 's.yaml', 'ok', ?)",
                   (json.dumps({"sources": [{"name": "news", "status": "ok", "errors": []}],
                                "totals": {"documents_new": 2}}),))
    yield reg
    reg.close()


def test_list_documents_folds_duplicates_and_counts_versions(registry: Registry) -> None:
    docs = {d.doc_id: d for d in catalog.list_documents(registry)}
    assert set(docs) == {"d1", "d3"}
    assert [x["doc_id"] for x in docs["d1"].duplicates] == ["d2"] and docs["d1"].duplicates[0]["kind"] == "near"
    assert docs["d3"].versions == 2 and docs["d3"].current_version == "v3b" and docs["d3"].chunks == 1


def test_filter_options_cover_chunk_and_document_languages(registry: Registry) -> None:
    opts = catalog.filter_options(registry)
    assert opts.languages == ["en", "es", "hi"]
    assert opts.doctypes == ["news", "tos"] and opts.publishers == ["Agency", "Corp, Inc."]
    assert str(opts.first_published) == "2025-03-04" and len(opts.version_dates) == 2


def test_source_health_takes_the_errors_of_the_latest_run(registry: Registry) -> None:
    (news, terms) = catalog.source_health(registry)
    assert news.name == "news" and news.run_id == "r2" and news.status == "partial"
    assert news.errors == [{"item": "https://a.example/x", "error": "HTTP 500; retry later"}]
    assert news.consecutive_failures == 1 and news.last_error == "timeout"
    assert terms.name == "terms" and terms.documents == 1 and terms.run_id is None


def test_index_counts_and_provenance(registry: Registry) -> None:
    assert catalog.index_counts(registry) == {"chunks": 3, "documents": 2, "duplicates": 1, "versions": 4}
    prov = catalog.version_provenance(registry, "v3a")
    assert prov["snapshot_sha"] == "s" * 64 and prov["current"] is False
    assert catalog.version_provenance(registry, "nope") == {}
    assert catalog.recent_runs(registry)[1]["documents_new"] == 2


def test_overview_counts_by_type_language_publisher_and_names_failing_sources(registry: Registry) -> None:
    with raw_connection(registry) as db:
        db.execute("UPDATE sources SET config=? WHERE name='news'", (json.dumps({"url": "https://a.example", "doctype": "news"}),))
        db.execute("INSERT INTO sources (name, config, consecutive_failures, last_error) VALUES "
                   "('court', ?, 2, 'cannot resolve host')", (json.dumps({"urls": ["https://x"], "doctype": "court"}),))
        db.execute("INSERT INTO sources (name, config, consecutive_failures) VALUES ('terms', ?, 0)",
                   (json.dumps({"path": "t", "doctype": "tos"}),))
    ov = catalog.overview(registry)
    assert ov.documents == 2                      # the folded copy is not counted
    assert ov.by_doctype == [("news", 1), ("tos", 1)]
    assert dict(ov.by_language) == {"en": 1, "hi": 1}
    assert dict(ov.by_publisher) == {"Agency": 1, "Corp, Inc.": 1}
    assert ov.newest_retrieval.startswith("2026-01-01")
    assert ov.sources == 3
    assert sorted(h.name for h in ov.failed) == ["court", "news"]
    assert dict(ov.failed_by_doctype) == {"court": 1, "news": 1}
    assert {h.name: h.kind for h in catalog.source_health(registry)} == {"court": "urls", "news": "url", "terms": "path"}
