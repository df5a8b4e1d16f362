"""Shared fixtures: the shared folder, settings in a temp data dir, and a real index of ../shared.

The index is built once per test session by the real pipeline with the real packaged embedder.
Passage vectors are cached in ``data/test-cache/`` (git-ignored), so only the first run anywhere
pays for embedding the corpus.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KB_SHARED_DIR", ROOT.parent / "shared"))
TEST_CACHE = Path(os.environ.get("KB_TEST_CACHE", ROOT / "data" / "test-cache" / "embed_cache.sqlite"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def pytest_configure(config: pytest.Config) -> None:
    for name, doc in (("integration", "uses a real index, store or server"),
                      ("browser", "drives headless Chromium"), ("slow", "takes more than ~30 s")):
        config.addinivalue_line("markers", f"{name}: {doc}")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared folder (real documents); tests that need it skip when it is absent."""
    if not (SHARED / "corpus").is_dir():
        pytest.skip(f"shared documents not found at {SHARED} (set KB_SHARED_DIR)")
    return SHARED


def make_settings(data_dir: Path, **changes: object):
    """Settings for a test data dir, sharing the persistent embedding cache."""
    from kb.settings import Settings

    base = Settings(data_dir=data_dir, embed_cache=TEST_CACHE, embed_threads=2)
    return base.with_(**changes) if changes else base


@pytest.fixture
def settings(tmp_path: Path):
    """Settings over an empty temp data dir."""
    return make_settings(tmp_path / "data")


def shared_sources_yaml(shared: Path, target: Path) -> Path:
    """A sources file that ingests ../shared/corpus and ../shared/seeds from disk."""
    target.write_text(
        "sources:\n"
        f"  - name: corpus\n    path: {shared / 'corpus'}\n    doctype: tos\n    exclude: [README.md]\n"
        f"  - name: seeds\n    path: {shared / 'seeds'}\n    doctype: news\n", encoding="utf-8")
    return target


@pytest.fixture(scope="session")
def shared_index(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path):
    """Settings of a real index built from ../shared/corpus and ../shared/seeds."""
    from ingest.pipeline import run_ingest
    from ingest.sources import load_sources

    root = tmp_path_factory.mktemp("shared-index")
    s = make_settings(root / "data")
    src = shared_sources_yaml(shared_dir, root / "sources.yaml")
    report = run_ingest(s, load_sources(src), progress=False)
    assert report.failed == 0, report.to_json()
    return s
