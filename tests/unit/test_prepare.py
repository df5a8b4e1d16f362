"""ingest.pipeline.prepare: only what extracts into a document is kept as evidence."""
from __future__ import annotations

from pathlib import Path

import pytest

from ingest.pipeline import Item, prepare
from ingest.sources import Source
from kb.evidence.extract import ExtractError
from kb.registry import Registry
from kb.settings import Settings


def test_a_failed_item_leaves_no_raw_bytes(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "data" / "registry.sqlite")
    empty = tmp_path / "empty.txt"
    empty.write_text("too short", encoding="utf-8")
    src = Source(name="docs", kind="path", targets=(str(tmp_path),))
    with pytest.raises(ExtractError):
        prepare(Item(src, str(empty), True), reg, Settings(data_dir=tmp_path / "data"))
    assert reg.snapshots() == [] and not (tmp_path / "data" / "snapshots").exists()

    good = tmp_path / "good.txt"
    good.write_text("A filing about the hearing schedule in the appeal, filed in May by the clerk.", encoding="utf-8")
    p = prepare(Item(src, str(good), True), reg, Settings(data_dir=tmp_path / "data"))
    assert [s["sha256"] for s in reg.snapshots()] == [p.snapshot_sha]
