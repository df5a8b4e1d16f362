"""Registry snapshots: content-addressed, verified, and safe when two threads store the same bytes."""
from __future__ import annotations

import gzip
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kb.errors import SnapshotError
from kb.registry import Registry


def test_same_snapshot_saved_by_many_threads_at_once(tmp_path: Path) -> None:
    """Regression: two items with identical bytes raced on one temp file (FileNotFoundError on rename)."""
    reg = Registry(tmp_path / "registry.sqlite")
    for round_ in range(20):
        content = f"the same page served twice, round {round_}".encode() * 200
        with ThreadPoolExecutor(max_workers=4) as pool:
            shas = list(pool.map(lambda _: reg.save_snapshot(content, "http://x/a", "2026-01-01T00:00:00Z"),
                                 range(4)))
        assert len(set(shas)) == 1
        assert reg.read_snapshot(shas[0]) == content
    assert not list((tmp_path / "snapshots").rglob("*.tmp"))


def test_tampered_snapshot_is_reported(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry.sqlite")
    sha = reg.save_snapshot(b"original evidence", "http://x/a", "2026-01-01T00:00:00Z")
    reg.verify_snapshot(sha)
    with gzip.open(reg.snapshot_path(sha), "wb") as fh:
        fh.write(b"altered evidence")
    with pytest.raises(SnapshotError, match="altered"):
        reg.verify_snapshot(sha)
