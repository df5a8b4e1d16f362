"""The whole ingest over HTTP: ../shared served as HTML pages, a feed and a sitemap on 127.0.0.1, with
planted duplicates and broken items; then the same run again, which must embed nothing and be fast."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from ingest.pipeline import run_ingest
from ingest.sources import load_sources
from kb.registry import Registry
from kb.vectors.store import open_store
from tests.fixtures.settings import make_settings
from tests.fixtures.webserver import Route, corpus_as_html, page_path, rss, serve, serve_shared

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_http_corpus_feed_sitemap_duplicates_and_failures(tmp_path: Path, shared_dir: Path) -> None:
    # A fresh embedding cache: this run really embeds, so the second run's share of time is honest.
    settings = make_settings(tmp_path / "data", embed_cache=tmp_path / "cache.sqlite", allow_private_hosts=True,
                             fetch_timeout=4.0, fetch_retries=0)
    # The planted timeout costs each run fetch_timeout. It is 4 s, not 1 s: in a 2-core CI run the first
    # run embeds while it fetches, and a 1 s budget once timed out on the small feed itself.
    with serve() as srv:
        files = serve_shared(srv)
        seeds = [f for f in files if f.parent.name == "seeds"]
        srv.set_route("/seeds-feed.xml", Route(body=rss(srv.base_url, seeds), content_type="application/rss+xml"))
        verge = next(f for f in seeds if "verge" in f.stem)
        original = corpus_as_html(verge).decode("utf-8")
        syndicated = original.replace("<article>", "<article><p>This story first appeared on a partner site and is "
                                      "republished with permission.</p>", 1)
        srv.set_route("/partner/republished.html", syndicated)
        latin1 = ("<html><head><title>Resumen en español</title></head><body><article>"
                  "<p>La señora jueza rechazó la petición; el público esperaba una decisión más rápida. "
                  "Según el expediente, la audiencia continuará en junio con más testigos de la compañía.</p>"
                  "<p>Otra sección explica qué ocurrió después, con más detalles sobre el año próximo.</p>"
                  "</article></body></html>")
        srv.set_route("/es/latin1.html", Route(body=latin1.encode("iso-8859-1"), content_type="text/html"))
        srv.set_route("/broken.pdf", Route(body=b"%PDF-1.4\n%broken\n1 0 obj\n<<", content_type="application/pdf"))
        srv.set_route("/slow.html", Route(body=original.encode(), delay=12.0))
        port = srv.base_url.rsplit(":", 1)[1]
        same_on_other_host = f"http://localhost:{port}{page_path(verge)}"
        sources = tmp_path / "sources.yaml"
        sources.write_text(f"""
sources:
  - name: corpus-sitemap
    sitemap: {srv.url('/sitemaps/corpus.xml')}
    doctype: tos
  - name: seeds-feed
    feed: {srv.url('/seeds-feed.xml')}
    doctype: news
  - name: extras
    urls:
      - {srv.url('/partner/republished.html')}
      - {same_on_other_host}
      - {srv.url('/es/latin1.html')}
      - {srv.url('/gone.html')}
      - {srv.url('/broken.pdf')}
      - {srv.url('/slow.html')}
    doctype: news
""", encoding="utf-8")
        srcs = load_sources(sources)
        t0 = time.perf_counter()
        first = run_ingest(settings, srcs, progress=False)
        first_s = time.perf_counter() - t0

        t = first.totals()
        assert first.exit_code == 1
        by = {s.name: s for s in first.sources}
        assert by["corpus-sitemap"].documents_new == len(files) - len(seeds) and by["corpus-sitemap"].failed == 0
        assert by["seeds-feed"].documents_new == len(seeds) and by["seeds-feed"].failed == 0
        assert by["extras"].documents_new == 1 and by["extras"].duplicates == 2
        errors = {e["item"].rsplit("/", 1)[1]: e["error"] for e in by["extras"].errors}
        assert set(errors) == {"gone.html", "broken.pdf", "slow.html"}
        assert "404" in errors["gone.html"]
        assert "PDF" in errors["broken.pdf"]
        assert "timed out" in errors["slow.html"] or "timeout" in errors["slow.html"].lower()
        assert t["documents_new"] == len(files) + 1 and t["duplicates"] == 2 and t["failed"] == 3

        reg = Registry(settings.registry_path)
        docs = reg.documents()
        canon = [d for d in docs if not d["duplicate_of"]]
        assert len(canon) == len(files) + 1
        verge_doc = next(d for d in canon if d["location"].endswith(page_path(verge)) and "127.0.0.1" in d["location"])
        dups = [d for d in docs if d["duplicate_of"]]
        assert {d["duplicate_of"] for d in dups} == {verge_doc["doc_id"]}
        es = next(d for d in canon if d["location"].endswith("latin1.html"))
        es_text = reg.version_text(reg.latest_version(es["doc_id"]).version_id)
        assert "señora jueza rechazó" in es_text and es["language"] == "es"
        langs = {d["language"] for d in canon}
        assert {"en", "hi"} <= langs
        store = open_store(settings, create=False)
        chunk_ids = [c.chunk_id for c in reg.chunks()]
        assert len(chunk_ids) == len(set(chunk_ids)) == store.count() == t["chunks_embedded"]

        t0 = time.perf_counter()
        second = run_ingest(settings, srcs, progress=False)
        second_s = time.perf_counter() - t0
    assert second.totals()["chunks_embedded"] == 0
    assert second.totals()["documents_new"] == 0 and second.totals()["documents_updated"] == 0
    # Apart from the planted timeout, which every run pays in full, the second run is near free.
    assert second_s - settings.fetch_timeout < 0.05 * first_s, (first_s, second_s)
