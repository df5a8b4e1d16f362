"""Pytest fixtures: the shared folder, settings in a temp data dir, and a real index of ../shared.

Helpers that tests import live in ``tests.fixtures`` (``tests.fixtures.settings`` for paths and
settings); this file holds only fixtures. The index is built once per test session by the real
pipeline with the real packaged embedder, over the persistent embedding cache.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures.settings import SHARED, make_settings, shared_sources_yaml

#: The throwaway PostgreSQL cluster (``postgres_server``, ``postgres_url``) for the registry-on-PostgreSQL tests.
pytest_plugins = ["tests.fixtures.postgres"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared folder (real documents); tests that need it skip when it is absent."""
    if not (SHARED / "corpus").is_dir():
        pytest.skip(f"shared documents not found at {SHARED} (set KB_SHARED_DIR)")
    return SHARED


@pytest.fixture
def settings(tmp_path: Path):
    """Settings over an empty temp data dir."""
    return make_settings(tmp_path / "data")


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
