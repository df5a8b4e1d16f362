"""``ingest verify`` re-derives every version from its snapshot; a damaged snapshot is restored."""
from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from ingest.cli import main as ingest_main
from ingest.pipeline import run_ingest
from ingest.sources import load_sources
from kb.registry import Registry
from tests.fixtures.registry_db import raw_connection
from tests.fixtures.settings import make_settings

pytestmark = pytest.mark.integration

TEXT = ("# Harbour notice\n\nThe harbour authority publishes every lighthouse inspection report within ten days "
        "of the inspection. Reports name the inspector and the date.\n")


@pytest.fixture
def indexed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notice.md").write_text(TEXT, encoding="utf-8")
    (tmp_path / "sources.yaml").write_text(f"sources:\n  - name: docs\n    path: {folder}\n", encoding="utf-8")
    settings = make_settings(tmp_path / "data")
    assert run_ingest(settings, load_sources(tmp_path / "sources.yaml"), progress=False).failed == 0
    monkeypatch.setenv("KB_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("KB_EMBED_CACHE", str(settings.embed_cache))
    return settings, tmp_path / "sources.yaml"


def test_text_edited_together_with_its_hash_fails_verify(indexed, capsys) -> None:
    settings, _ = indexed
    assert ingest_main(["verify", "--no-store"]) == 0
    assert "extracted again" in capsys.readouterr().out
    reg = Registry(settings.registry_path)
    (v,) = [reg.latest_version(d["doc_id"]) for d in reg.documents()]
    reg.close()
    forged = TEXT.replace("ten days", "ten years").lstrip("# ")
    with raw_connection(settings.registry_path) as db:   # the text and its hash edited together
        db.execute("UPDATE versions SET text=?, text_sha=? WHERE version_id=?",
                   (forged, hashlib.sha256(forged.encode()).hexdigest(), v.version_id))
    assert ingest_main(["verify", "--no-store", "--json"]) == 1
    kinds = {p["kind"] for p in json.loads(capsys.readouterr().out)["problems"]}
    assert "version-rederive" in kinds


def test_a_damaged_snapshot_is_restored_by_repair_and_by_the_next_run(indexed, capsys) -> None:
    settings, sources = indexed
    reg = Registry(settings.registry_path)
    (snap,) = reg.snapshots()
    path = reg.snapshot_path(snap["sha256"])
    reg.close()
    with gzip.open(path, "wb") as fh:
        fh.write(b"tampered")
    assert ingest_main(["verify", "--no-store"]) == 1
    assert ingest_main(["verify", "--no-store", "--repair"]) == 0
    assert "restored" in capsys.readouterr().err
    with gzip.open(path, "wb") as fh:
        fh.write(b"tampered again")
    run_ingest(settings, load_sources(sources), progress=False)
    assert ingest_main(["verify", "--no-store"]) == 0


def test_an_index_with_nothing_indexed_yet_says_so(tmp_path: Path) -> None:
    """During the first ingest (registry and store exist, no passage indexed yet) a question gets a clear answer."""
    from kb.answer.engine import NOTHING_INDEXED, Engine

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "empty.txt").write_text("too short", encoding="utf-8")   # fails: no document gets indexed
    (tmp_path / "s.yaml").write_text(f"sources:\n  - name: docs\n    path: {folder}\n", encoding="utf-8")
    settings = make_settings(tmp_path / "data")
    assert run_ingest(settings, load_sources(tmp_path / "s.yaml"), progress=False).failed == 1
    engine = Engine(settings)
    try:
        ans = engine.ask("What does the harbour authority publish?")
    finally:
        engine.close()
    assert ans.abstained and ans.answer == NOTHING_INDEXED and ans.reason == "nothing indexed yet"


def test_an_export_refuses_a_quote_whose_stored_text_was_forged_with_its_hash(indexed, tmp_path: Path,
                                                                               capsys) -> None:
    """Exports check quotes against the text extracted again from the snapshot, not the registry's word."""
    from kb.cli import main as kb_main

    settings, _ = indexed
    question = "Within how many days are lighthouse inspection reports published?"
    good = tmp_path / "good.json"
    assert kb_main(["export", question, "--format", "json", "-o", str(good)]) == 0
    assert "ten days" in good.read_text(encoding="utf-8")
    reg = Registry(settings.registry_path)
    (v,) = [reg.latest_version(d["doc_id"]) for d in reg.documents()]
    stored = reg.version_text(v.version_id)
    reg.close()
    forged = stored.replace("ten days", "six days")   # same length: every offset still lands
    with raw_connection(settings.registry_path) as db:
        db.execute("UPDATE versions SET text=?, text_sha=? WHERE version_id=?",
                   (forged, hashlib.sha256(forged.encode()).hexdigest(), v.version_id))
    capsys.readouterr()
    out = tmp_path / "forged.json"
    assert kb_main(["export", question, "--format", "json", "-o", str(out)]) != 0
    err = capsys.readouterr().err
    assert "extracted again" in err and not out.exists()
