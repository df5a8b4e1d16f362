"""Scheduled re-ingestion, versions, cheap re-checks, evidence verification and explicit pruning.

The headline check of issue 6: serve version A of a page, ingest, switch the server to version B at
the same URL, let ``ingest watch`` run for several intervals (refresh 2 s): both versions are indexed,
the newest answers by default, ``--as-of`` reaches the old one, ``kb diff`` shows the added clause,
and the intervals without a change embed nothing.
"""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.lock import LockBusy, run_lock
from ingest.pipeline import run_ingest
from ingest.scheduler import RETRY_BASE, SourceState, Watcher, next_due, retry_delay, watch_lock
from ingest.sources import load_sources
from kb.registry import Registry
from kb.times import FOREVER, iso
from kb.vectors.store import open_store
from tests.fixtures.faults import article_html, article_text
from tests.fixtures.registry_db import raw_connection, rows
from tests.fixtures.settings import ROOT, TEST_CACHE, make_settings
from tests.fixtures.webserver import Route, corpus_as_html, page, serve, status

pytestmark = pytest.mark.integration
CLAUSE = "distilling model data or Outputs"
QUESTION = "What does the xAI acceptable use policy say about distilling model data or outputs?"


def web_settings(data_dir: Path):
    return make_settings(data_dir, allow_private_hosts=True, fetch_timeout=5.0, fetch_retries=1)


def one_url_sources(path: Path, url: str, refresh: str = "2s", name: str = "xai-aup") -> Path:
    path.write_text(f"sources:\n  - name: {name}\n    url: {url}\n    doctype: tos\n    refresh: {refresh}\n",
                    encoding="utf-8")
    return path


def folder_sources(path: Path, entries: dict[str, Path], refresh: str = "1h") -> Path:
    lines = ["sources:"] + [f"  - name: {n}\n    path: {p}\n    refresh: {refresh}" for n, p in entries.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def at(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the headline scenario ---------------------------------------------------------------------------------
def test_changed_page_becomes_a_version_that_answers_by_default_and_as_of_reaches_the_old_one(
        tmp_path, shared_dir, monkeypatch, capsys) -> None:
    from kb.answer.engine import Engine
    from kb.cli import main as kb_main
    from kb.retrieval.filters import Filters

    a = corpus_as_html(shared_dir / "corpus" / "tos-xai-aup-2025-01-02.txt")
    b = corpus_as_html(shared_dir / "corpus" / "tos-xai-aup-2026-06-26.txt")
    with serve({"/legal/acceptable-use-policy": Route(body=a, etag='"aup-a"')}) as srv:
        url = srv.url("/legal/acceptable-use-policy")
        src = one_url_sources(tmp_path / "sources.yaml", url)
        settings = web_settings(tmp_path / "data")
        first = run_ingest(settings, load_sources(src), progress=False)
        assert first.totals()["documents_new"] == 1 and first.totals()["chunks_embedded"] > 0

        srv.set_route("/legal/acceptable-use-policy", Route(body=b, etag='"aup-b"'))
        events = []
        Watcher(settings, src, max_runs=3, duration=60, on_event=events.append).run()
        runs = [e.report for e in events if e.kind == "run"]
        assert len(runs) == 3, [e.message for e in events]
        assert runs[0].totals()["documents_updated"] == 1 and runs[0].totals()["chunks_embedded"] > 0
        for quiet in runs[1:]:   # intervals with no change: a 304, nothing extracted or embedded
            assert quiet.totals()["documents_unchanged"] == 1 and quiet.totals()["chunks_embedded"] == 0
        hits = [r for r in srv.requests if r.path == "/legal/acceptable-use-policy"]
        assert [r.headers.get("If-None-Match") for r in hits[-2:]] == ['"aup-b"', '"aup-b"']

    reg = Registry(settings.registry_path)
    started = [datetime.fromisoformat(r["started"].replace("Z", "+00:00")).timestamp()
               for r in reversed(reg.runs(limit=3))]
    assert all(later - earlier >= 1.0 for earlier, later in zip(started, started[1:])), \
        "runs follow the 2 s refresh (timestamps have 1 s resolution)"
    (doc,) = reg.documents()
    old, new = reg.versions(doc["doc_id"])
    assert old.status == new.status == "indexed"
    assert old.valid_to == new.valid_from and new.valid_to == FOREVER
    assert CLAUSE in reg.version_text(new.version_id) and CLAUSE not in reg.version_text(old.version_id)
    for v in (old, new):   # each version keeps its evidence: raw snapshot, SHA-256, retrieval time
        snap = reg.snapshot(v.snapshot_sha)
        assert snap and snap["retrieved"] == v.retrieved
        reg.verify_snapshot(v.snapshot_sha)
    store = open_store(settings, create=False)
    assert sorted(store.all_ids()) == sorted(c.chunk_id for c in reg.chunks())

    engine = Engine(settings)
    now = engine.retriever.search(QUESTION, "en", Filters(), top_k=5)
    assert now.passages and {p.version_id for p in now.passages} == {new.version_id}
    then = engine.retriever.search(QUESTION, "en", Filters(as_of=at(old.valid_from)), top_k=5)
    assert then.passages and {p.version_id for p in then.passages} == {old.version_id}
    answer = engine.ask(QUESTION)
    assert not answer.abstained and {c.version_id for c in answer.citations} == {new.version_id}
    assert any("distill" in c.quote for c in answer.citations)
    engine.close()

    monkeypatch.setenv("KB_DATA_DIR", str(settings.data_dir))
    capsys.readouterr()
    assert kb_main(["diff", doc["url"]]) == 0
    out = capsys.readouterr().out
    added = [line for line in out.splitlines() if line.startswith("+ ")]
    assert any("distilling model data" in line for line in added), out
    assert kb_main(["diff", url, "--from", at(old.valid_from), "--to", at(new.valid_from), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["from"]["version_id"] == old.version_id and d["to"]["version_id"] == new.version_id
    clause = [c for c in d["changes"] if CLAUSE in c["new"]]
    assert clause and clause[0]["op"] == "added"
    text = reg.version_text(new.version_id)
    assert text[clause[0]["new_start"]:clause[0]["new_end"]] == clause[0]["new"]
    assert kb_main(["diff", url, "--to", at(old.valid_from)]) == 0
    assert "the first version" in capsys.readouterr().out
    assert kb_main(["diff", "https://example.org/not-indexed"]) == 2


def test_diff_versions_api_for_the_sources_page(tmp_path) -> None:
    """The function the app's sources page calls, on a document updated by a plain re-run."""
    from kb.diff import compare_versions, diff_versions, version_history

    folder = tmp_path / "f"
    folder.mkdir()
    doc = folder / "terms.txt"
    doc.write_text("Terms of service.\n\nYou may use the service for research.\n\nWe may end your access.\n",
                   encoding="utf-8")
    settings = make_settings(tmp_path / "data")
    src = folder_sources(tmp_path / "s.yaml", {"terms": folder})
    run_ingest(settings, load_sources(src), progress=False)
    doc.write_text("Terms of service.\n\nYou may use the service for non-commercial research.\n\nWe may end your "
                   "access.\n\nYou must not distill our models.\n", encoding="utf-8")
    run_ingest(settings, load_sources(src), progress=False)
    reg = Registry(settings.registry_path)
    changes = diff_versions(reg, str(doc.resolve()))
    assert [c.op for c in changes] == ["changed", "added"]
    assert ("insert", "non-commercial ") in changes[0].words
    assert changes[1].new == "You must not distill our models."
    assert len(version_history(reg, str(doc.resolve()))) == 2
    assert compare_versions(reg, reg.documents()[0]["doc_id"]).unchanged == 2


# -- the schedule ------------------------------------------------------------------------------------------
def test_next_due_is_last_run_plus_refresh_with_backoff_after_failures() -> None:
    from ingest.sources import Source

    src = Source(name="s", kind="url", targets=("https://example.org/",), refresh_seconds=6 * 3600)
    now = 1_800_000_000.0
    assert next_due(src, None, now=now) == now
    row = {"last_run": iso(datetime.fromtimestamp(now - 3600, UTC)), "consecutive_failures": 0}
    assert next_due(src, row, now=now) == now - 3600 + 6 * 3600
    row["consecutive_failures"] = 1
    assert next_due(src, row, now=now) == now - 3600 + RETRY_BASE
    row["consecutive_failures"] = 3
    assert next_due(src, row, now=now) == now - 3600 + 4 * RETRY_BASE
    row["consecutive_failures"] = 20
    assert next_due(src, row, now=now) == now - 3600 + 6 * 3600, "backoff never exceeds the refresh"
    assert retry_delay(2, 5) == 2
    state = SourceState(failures=2, last_attempt=now)   # a run that raised (store down): watcher-side backoff
    assert next_due(src, {"last_run": None}, state, now=now) == now + 2 * RETRY_BASE


def test_restarted_watcher_continues_the_schedule_from_the_registry(tmp_path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.txt").write_text("A notice about the appeal hearing, scheduled for the spring session.",
                                  encoding="utf-8")
    settings = make_settings(tmp_path / "data")
    src = folder_sources(tmp_path / "s.yaml", {"notes": folder}, refresh="5s")
    first: list = []
    Watcher(settings, src, duration=2.0, on_event=first.append).run()
    assert sum(e.kind == "run" for e in first) == 1          # never run before: due at once
    last = Registry(settings.registry_path).sources()[0]["last_run"]

    second: list = []
    Watcher(settings, src, duration=1.0, on_event=second.append).run()
    assert not [e for e in second if e.kind == "run"], "not due yet after a restart"
    due = datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp() + 5
    assert any(at(int(due)) in e.message for e in second if e.kind == "scheduled"), [e.message for e in second]

    third: list = []
    t0 = time.time()
    Watcher(settings, src, max_runs=1, duration=15, on_event=third.append).run()
    assert sum(e.kind == "run" for e in third) == 1 and time.time() >= due - 1.0
    assert time.time() - t0 < 12


def test_watcher_survives_a_failing_source_and_a_failed_run(tmp_path, monkeypatch) -> None:
    import ingest.scheduler as scheduler
    from kb.errors import StoreUnavailable

    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.txt").write_text("A notice about the appeal hearing, scheduled for the spring session.",
                                  encoding="utf-8")
    real = scheduler.run_ingest
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise StoreUnavailable("cannot open the embedded store: disk I/O error (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(scheduler, "run_ingest", flaky)
    with serve({"/down": status(500)}) as srv:
        src = tmp_path / "s.yaml"
        src.write_text(f"sources:\n  - name: notes\n    path: {folder}\n    refresh: 1s\n"
                       f"  - name: down\n    url: {srv.url('/down')}\n    refresh: 1s\n", encoding="utf-8")
        settings = make_settings(tmp_path / "data", allow_private_hosts=True, fetch_timeout=2.0, fetch_retries=0)
        events: list = []
        Watcher(settings, src, max_runs=5, duration=60, on_event=events.append).run()
    kinds = [(e.kind, e.source) for e in events if e.kind in ("run", "error")]
    assert kinds[0][0] == "error", "the first run raised and was logged, not fatal"
    assert {s for k, s in kinds if k == "run"} == {"notes", "down"}
    health = {s["name"]: s for s in Registry(settings.registry_path).sources()}
    assert health["down"]["consecutive_failures"] >= 1 and "HTTP 500" in health["down"]["last_error"]
    assert health["notes"]["last_success"] and health["notes"]["consecutive_failures"] == 0


def test_second_watcher_and_concurrent_run_are_refused_with_a_clear_message(tmp_path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.txt").write_text("A notice about the appeal hearing, scheduled for the spring session.",
                                  encoding="utf-8")
    src = folder_sources(tmp_path / "s.yaml", {"notes": folder})
    settings = make_settings(tmp_path / "data")
    env = {**os.environ, "KB_DATA_DIR": str(settings.data_dir), "KB_EMBED_CACHE": str(TEST_CACHE)}
    cli = [sys.executable, "-m", "ingest"]
    with watch_lock(settings):
        with pytest.raises(LockBusy, match="already running"):
            with watch_lock(settings):
                pass
        proc = subprocess.run(cli + ["watch", "--sources", str(src), "--max-runs", "1"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1 and f"`ingest watch` (pid {os.getpid()}) is already running" in proc.stderr
    with run_lock(settings):
        proc = subprocess.run(cli + ["run", "--sources", str(src), "--quiet"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1 and f"another ingest (pid {os.getpid()}) is running" in proc.stderr
        waiting = subprocess.Popen(cli + ["run", "--sources", str(src), "--quiet", "--wait"], cwd=ROOT, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2.0)
        assert waiting.poll() is None, "--wait waits for the lock"
    assert waiting.wait(timeout=120) == 0, waiting.stderr.read()


# -- cheap re-checks ---------------------------------------------------------------------------------------
def article(n: int, stamp: str) -> str:
    """A distinct small article whose footer carries a generation stamp (boilerplate)."""
    html = article_html(*article_text(500 + n))
    return html.replace("Fault-injection test site", f"Page generated {stamp}")


def test_unchanged_pages_cost_no_extraction_or_embedding(tmp_path, monkeypatch) -> None:
    import ingest.pipeline as pipeline

    extracted: list[str] = []
    real_extract = pipeline.extract_document

    def counting(result, hint=None):
        extracted.append(result.url)
        return real_extract(result, hint)

    monkeypatch.setattr(pipeline, "extract_document", counting)
    lm = "Wed, 01 Jan 2026 00:00:00 GMT"
    routes = {"/etag": page(article(0, "x"), etag='"e1"'), "/lastmod": page(article(1, "y"), last_modified=lm),
              "/plain": page(article(2, "z")), "/stamped": page(article(3, "1"))}
    with serve(routes) as srv:
        src = tmp_path / "s.yaml"
        src.write_text("sources:\n  - name: pages\n    urls:\n"
                       + "".join(f"      - {srv.url(p)}\n" for p in routes), encoding="utf-8")
        settings = web_settings(tmp_path / "data")
        first = run_ingest(settings, load_sources(src), progress=False)
        assert first.totals()["documents_new"] == 4
        srv.set_route("/stamped", page(article(3, "2")))  # only the boilerplate changed
        extracted.clear()
        n_requests = len(srv.requests)
        second = run_ingest(settings, load_sources(src), progress=False)
        fresh = srv.requests[n_requests:]
    t = second.totals()
    assert t["documents_unchanged"] == 4 and t["chunks_embedded"] == 0 and t["documents_updated"] == 0
    cond = {r.path: r.headers for r in fresh if r.path in routes}
    assert cond["/etag"].get("If-None-Match") == '"e1"' and cond["/lastmod"].get("If-Modified-Since") == lm
    # 304s and byte-identical bodies are not extracted; only the page whose bytes changed is.
    assert [u.rsplit("/", 1)[-1] for u in extracted] == ["stamped"]
    reg = Registry(settings.registry_path)
    assert rows(reg, "SELECT COUNT(*) FROM versions")[0][0] == 4


def test_feed_run_adds_only_new_items(tmp_path) -> None:
    def rss(base: str, n: int) -> bytes:
        items = "".join(f"<item><title>Item {i}</title><link>{base}/story/{i}</link><guid>{base}/story/{i}</guid>"
                        "</item>" for i in range(n))
        return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title><link>{base}/</link>'
                f"<description>wire</description>{items}</channel></rss>").encode()

    topics = ["a tariff dispute at the port", "a library funding vote", "a bridge repair contract",
              "a museum copyright claim"]
    with serve() as srv:
        for i, topic in enumerate(topics):
            srv.set_route(f"/story/{i}", page(f"<html><head><title>Story {i}</title></head><body><article>"
                                              f"<h1>Story {i}</h1><p>Reporters covered {topic} in detail today, "
                                              f"quoting officials and residents about story number {i}.</p>"
                                              "</article></body></html>", etag=f'"s{i}"'))
        srv.set_route("/feed.xml", Route(body=rss(srv.base_url, 3), content_type="application/rss+xml"))
        src = tmp_path / "s.yaml"
        src.write_text(f"sources:\n  - name: wire\n    feed: {srv.url('/feed.xml')}\n    doctype: news\n",
                       encoding="utf-8")
        settings = web_settings(tmp_path / "data")
        first = run_ingest(settings, load_sources(src), progress=False)
        assert first.totals()["documents_new"] == 3
        srv.set_route("/feed.xml", Route(body=rss(srv.base_url, 4), content_type="application/rss+xml"))
        second = run_ingest(settings, load_sources(src), progress=False)
    t = second.totals()
    assert t["documents_new"] == 1 and t["documents_unchanged"] == 3
    reg = Registry(settings.registry_path)
    new_doc = next(d for d in reg.documents() if d["location"].endswith("/story/3"))
    assert t["chunks_embedded"] == len(reg.chunks(reg.latest_version(new_doc["doc_id"]).version_id))


# -- evidence ----------------------------------------------------------------------------------------------
def test_verify_reports_altered_snapshots_texts_and_missing_vectors(tmp_path, monkeypatch, capsys) -> None:
    from ingest.cli import main as ingest_main

    settings = make_settings(tmp_path / "data")
    src = folder_sources(tmp_path / "s.yaml", {"briefs": ROOT / "demo" / "briefs"})
    run_ingest(settings, load_sources(src), progress=False)
    monkeypatch.setenv("KB_DATA_DIR", str(settings.data_dir))
    capsys.readouterr()
    assert ingest_main(["verify"]) == 0
    assert "all match" in capsys.readouterr().out

    reg = Registry(settings.registry_path)
    shas = [r[0] for r in rows(reg, "SELECT sha256 FROM snapshots ORDER BY sha256")]
    with gzip.open(reg.snapshot_path(shas[0]), "wb") as fh:      # evidence altered on disk
        fh.write(b"tampered")
    victim = rows(reg, "SELECT version_id FROM versions ORDER BY version_id")[1][0]
    with raw_connection(reg) as db:                                 # stored text altered in the registry
        db.execute("UPDATE versions SET text=text||' (edited)' WHERE version_id=?", (victim,))
    chunk = reg.chunks()[0].chunk_id
    open_store(settings, create=False).delete([chunk])          # a vector lost
    assert ingest_main(["verify", "--json"]) == 1
    rep = json.loads(capsys.readouterr().out)
    kinds = {p["kind"]: p for p in rep["problems"]}
    assert set(kinds) == {"snapshot", "version-text", "vector-missing"}
    assert shas[0] in kinds["snapshot"]["error"] and victim in kinds["version-text"]["item"]
    assert kinds["vector-missing"]["item"] == chunk and rep["ok"] is False


# -- retention ---------------------------------------------------------------------------------------------
def test_prune_is_explicit_and_removes_only_the_dropped_source(tmp_path, monkeypatch, capsys) -> None:
    from ingest.cli import main as ingest_main

    briefs = ROOT / "demo" / "briefs"
    wire, local = tmp_path / "wire", tmp_path / "local"
    wire.mkdir()
    local.mkdir()
    original = (briefs / "en-musk-testimony-distillation.md").read_text(encoding="utf-8")
    (wire / "story.md").write_text(original, encoding="utf-8")
    body = original.split("---", 2)[2]
    (local / "copy.txt").write_text("Home | Tech | Subscribe\n\n" + body.replace("\n\n", "\n")
                                    + "\n\nShare this story.\n", encoding="utf-8")
    (local / "own.txt").write_text("A local note on the court calendar for the appeal hearing in the spring.",
                                   encoding="utf-8")
    settings = make_settings(tmp_path / "data")
    both = folder_sources(tmp_path / "both.yaml", {"wire": wire, "local": local})
    report = run_ingest(settings, load_sources(both), progress=False)
    assert report.totals()["duplicates"] == 1
    only_local = folder_sources(tmp_path / "local.yaml", {"local": local})
    assert run_ingest(settings, load_sources(only_local), progress=False).removed_sources == ["wire"]

    reg = Registry(settings.registry_path)
    wire_doc = reg.documents(source="wire")[0]
    wire_chunks = [c.chunk_id for c in reg.chunks(reg.latest_version(wire_doc["doc_id"]).version_id)]
    wire_snap = reg.latest_version(wire_doc["doc_id"]).snapshot_sha
    monkeypatch.setenv("KB_DATA_DIR", str(settings.data_dir))
    capsys.readouterr()
    assert ingest_main(["prune", "--sources", str(only_local), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "wire" in out and "1 documents" in out and "dry run: nothing deleted" in out
    assert ingest_main(["prune", "--sources", str(only_local)]) == 2    # not a TTY and no --yes: refused
    assert "--yes" in capsys.readouterr().err
    assert ingest_main(["prune", "--sources", str(only_local), "--source", "local", "--yes"]) == 2
    assert len(reg.documents(source="wire")) == 1, "nothing deleted without an explicit --yes"

    assert ingest_main(["prune", "--sources", str(only_local), "--yes"]) == 0
    assert not reg.documents(source="wire") and "wire" not in {s["name"] for s in reg.sources()}
    store_ids = set(open_store(settings, create=False).all_ids())
    assert not store_ids & set(wire_chunks)
    assert not reg.snapshot_path(wire_snap).exists() and reg.snapshot(wire_snap) is None
    copy = next(d for d in reg.documents(source="local") if d["location"].endswith("copy.txt"))
    assert copy["duplicate_of"] is None, "the local copy of the pruned story becomes canonical"
    copy_chunks = reg.chunks(reg.latest_version(copy["doc_id"]).version_id)
    assert copy_chunks and {c.chunk_id for c in copy_chunks} <= store_ids
    assert store_ids == reg.indexed_chunk_ids()
    capsys.readouterr()
    assert ingest_main(["verify"]) == 0, capsys.readouterr().out
    assert ingest_main(["prune", "--sources", str(only_local), "--yes"]) == 0
    assert "nothing to prune" in capsys.readouterr().out
