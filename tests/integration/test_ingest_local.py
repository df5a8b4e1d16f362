"""The ingest pipeline on local files: languages, offsets, incremental runs, versions, duplicates, failures."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ingest.pipeline import run_ingest
from ingest.sources import load_sources
from kb.registry import Registry
from kb.times import FOREVER
from kb.vectors.store import open_store
from tests.fixtures.registry_db import rows

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def sources_for(tmp_path: Path, folder: Path, extra: str = "") -> Path:
    p = tmp_path / "sources.yaml"
    p.write_text(f"sources:\n  - name: briefs\n    path: {folder}\n    doctype: news\n{extra}", encoding="utf-8")
    return p


@pytest.fixture
def briefs(tmp_path: Path) -> Path:
    folder = tmp_path / "briefs"
    shutil.copytree(ROOT / "demo" / "briefs", folder)
    return folder


def test_demo_briefs_are_indexed_with_languages_and_exact_offsets(settings, tmp_path, briefs) -> None:
    report = run_ingest(settings, load_sources(sources_for(tmp_path, briefs)), progress=False)
    t = report.totals()
    assert report.exit_code == 0, report.to_json()
    assert t["documents_new"] == 5 and t["failed"] == 0 and t["duplicates"] == 0
    reg = Registry(settings.registry_path)
    langs = sorted(d["language"] for d in reg.documents())
    assert langs == ["en", "en", "es", "hi", "zh"]
    chunks = reg.chunks()
    assert t["chunks_embedded"] == len(chunks) > 5
    for c in chunks:
        assert reg.version_text(c.version_id)[c.start:c.end] == c.text
    store = open_store(settings, create=False)
    assert set(store.all_ids()) == {c.chunk_id for c in chunks}
    hi = [c for c in chunks if c.language == "hi"]
    assert hi, "per-passage language: Hindi passages are tagged hi"
    for v in rows(reg, "SELECT snapshot_sha FROM versions"):
        reg.verify_snapshot(v[0])


def test_second_run_embeds_nothing_and_changed_file_adds_a_version(settings, tmp_path, briefs) -> None:
    sources = load_sources(sources_for(tmp_path, briefs))
    first = run_ingest(settings, sources, progress=False)
    second = run_ingest(settings, sources, progress=False)
    assert second.totals()["chunks_embedded"] == 0
    assert second.totals()["documents_unchanged"] == 5

    target = briefs / "en-musk-v-altman-timeline.md"
    target.write_text(target.read_text(encoding="utf-8") + "\n\nA new paragraph about a hearing in June 2026.\n",
                      encoding="utf-8")
    third = run_ingest(settings, sources, progress=False)
    assert third.totals()["documents_updated"] == 1 and third.totals()["documents_unchanged"] == 4
    reg = Registry(settings.registry_path)
    doc = next(d for d in reg.documents() if d["location"].endswith("en-musk-v-altman-timeline.md"))
    old, new = reg.versions(doc["doc_id"])
    assert old.valid_to == new.valid_from and new.valid_to == FOREVER
    assert "June 2026" in reg.version_text(new.version_id) and "June 2026" not in reg.version_text(old.version_id)
    store = open_store(settings, create=False)
    old_ids = [c.chunk_id for c in reg.chunks(old.version_id)]
    metas = store.collection.get(ids=old_ids, include=["metadatas"])["metadatas"]
    assert metas and all(m["valid_to"] == new.valid_from for m in metas)
    assert store.count() == len(reg.chunks())
    assert first.totals()["chunks_embedded"] > third.totals()["chunks_embedded"] > 0


def test_near_duplicate_is_recorded_not_indexed(settings, tmp_path, briefs) -> None:
    src = (briefs / "en-musk-testimony-distillation.md").read_text(encoding="utf-8")
    body = src.split("---", 2)[2]
    (briefs / "syndicated-copy.txt").write_text(
        "Home | Tech | Subscribe\n\n" + body.replace("\n\n", "\n") + "\n\nShare this story. Copyright 2026.\n",
        encoding="utf-8")
    report = run_ingest(settings, load_sources(sources_for(tmp_path, briefs)), progress=False)
    assert report.totals()["duplicates"] == 1
    reg = Registry(settings.registry_path)
    dup = next(d for d in reg.documents() if d["location"].endswith("syndicated-copy.txt"))
    canon = next(d for d in reg.documents() if d["location"].endswith("en-musk-testimony-distillation.md"))
    assert dup["duplicate_of"] == canon["doc_id"] and dup["duplicate_kind"] == "near"
    assert not rows(reg, "SELECT 1 FROM chunks WHERE doc_id=?", (dup["doc_id"],))


def test_broken_items_are_reported_and_the_rest_is_indexed(settings, tmp_path, briefs) -> None:
    (briefs / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /ChunkCatalogue >>\nthis is not a pdf")
    (briefs / "empty.txt").write_text("   \n", encoding="utf-8")
    extra = f"  - name: missing-folder\n    path: {tmp_path / 'nowhere'}\n"
    report = run_ingest(settings, load_sources(sources_for(tmp_path, briefs, extra)), progress=False)
    assert report.exit_code == 1
    by = {s.name: s for s in report.sources}
    assert by["briefs"].status == "partial" and by["briefs"].documents_new == 5
    items = {Path(e["item"]).name: e["error"] for e in by["briefs"].errors}
    assert set(items) == {"broken.pdf", "empty.txt"}
    assert all(len(msg) > 20 for msg in items.values())
    assert by["missing-folder"].status == "failed" and "does not exist" in by["missing-folder"].errors[0]["error"]
    reg = Registry(settings.registry_path)
    health = {s["name"]: s for s in reg.sources()}
    assert health["missing-folder"]["consecutive_failures"] == 1 and health["briefs"]["last_success"]


def test_removed_source_is_reported_not_deleted(settings, tmp_path, briefs) -> None:
    run_ingest(settings, load_sources(sources_for(tmp_path, briefs)), progress=False)
    other = tmp_path / "other.yaml"
    note = tmp_path / "note.txt"
    note.write_text("A short note on the xAI acceptable use policy and its distillation clause, added in 2026.",
                    encoding="utf-8")
    other.write_text(f"sources:\n  - name: notes\n    path: {note}\n", encoding="utf-8")
    report = run_ingest(settings, load_sources(other), progress=False)
    assert report.removed_sources == ["briefs"]
    assert len(Registry(settings.registry_path).documents(source="briefs")) == 5
