"""ingest.discover: feeds and sitemaps on a real 127.0.0.1 server, and folder listing."""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Iterator

import pytest

from ingest import fetch
from ingest.discover import DiscoverError, discover_feed, discover_sitemap, list_folder
from ingest.fetch import FetchError
from kb.settings import Settings
from tests.fixtures import webserver as ws
from tests.fixtures.webserver import Route, Server, page, serve

SHARED = ws.shared_files()
needs_shared = pytest.mark.skipif(not SHARED, reason=f"shared corpus not found at {ws.shared_dir()}; "
                                                      "set KB_SHARED_DIR to the folder holding corpus/ and seeds/")
XML = "application/xml"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with serve() as srv:
        ws.serve_shared(srv)
        yield srv


@pytest.fixture(autouse=True)
def _fresh_robots() -> None:
    fetch.clear_robots_cache()


@pytest.fixture
def settings() -> Settings:
    return Settings(allow_private_hosts=True, fetch_timeout=2.0, fetch_retries=0)


def _expected(server: Server) -> list[str]:
    return [server.url(ws.page_path(p)) for p in SHARED]


# -- feeds ---------------------------------------------------------------------------------------
@needs_shared
def test_rss_feed_lists_every_item_in_order(server: Server, settings: Settings) -> None:
    assert discover_feed(server.url("/feed.xml"), settings) == _expected(server)


@needs_shared
def test_atom_feed_relative_links_are_resolved(server: Server, settings: Settings) -> None:
    assert discover_feed(server.url("/feeds/atom.xml"), settings) == _expected(server)


@needs_shared
def test_html_page_advertising_a_feed_is_followed(server: Server, settings: Settings) -> None:
    server.set_route("/home", page('<html><head><link rel="alternate" type="application/rss+xml" '
                                   'href="/feed.xml"></head><body><p>Home</p></body></html>'))
    assert discover_feed(server.url("/home"), settings) == _expected(server)


def test_feed_items_are_deduplicated_and_non_http_links_dropped(server: Server, settings: Settings) -> None:
    items = ["/a", "/a#comments", "mailto:desk@example.org", "/b", "/a"]
    rss = "".join(f"<item><title>{n}</title><link>{link}</link></item>" for n, link in enumerate(items))
    server.set_route("/dups.xml", page(f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
                                       f"{rss}</channel></rss>", content_type="application/rss+xml"))
    assert discover_feed(server.url("/dups.xml"), settings) == [server.url("/a"), server.url("/b")]


def test_empty_feed_gives_no_items(server: Server, settings: Settings) -> None:
    server.set_route("/empty.xml", page('<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
                                        "</channel></rss>", content_type="application/rss+xml"))
    assert discover_feed(server.url("/empty.xml"), settings) == []


def test_a_page_that_is_not_a_feed_says_what_to_do(server: Server, settings: Settings) -> None:
    server.set_route("/plain", page("<html><body><p>No feed here.</p></body></html>"))
    with pytest.raises(DiscoverError, match="is not an RSS or Atom feed") as info:
        discover_feed(server.url("/plain"), settings)
    assert "'feed' URL in the sources file" in str(info.value) and info.value.item == server.url("/plain")


def test_missing_feed_is_a_fetch_error(server: Server, settings: Settings) -> None:
    with pytest.raises(FetchError, match="HTTP 404"):
        discover_feed(server.url("/no-feed.xml"), settings)


def test_feed_on_a_private_host_is_refused_without_the_flag(server: Server) -> None:
    with pytest.raises(FetchError, match="KB_ALLOW_PRIVATE_HOSTS=1"):
        discover_feed(server.url("/feed.xml"), Settings())
    with pytest.raises(FetchError, match="KB_ALLOW_PRIVATE_HOSTS=1"):
        discover_sitemap(server.url("/sitemap.xml"), Settings())


# -- sitemaps ------------------------------------------------------------------------------------
@needs_shared
def test_sitemap_index_is_followed_recursively(server: Server, settings: Settings) -> None:
    assert discover_sitemap(server.url("/sitemap.xml"), settings) == _expected(server)


@needs_shared
def test_broken_child_sitemap_is_skipped(server: Server, settings: Settings) -> None:
    body = ('<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"<sitemap><loc>{server.url('/sitemaps/gone.xml')}</loc></sitemap>"
            "<sitemap><loc>/sitemaps/seeds.xml</loc></sitemap></sitemapindex>")
    server.set_route("/partial.xml", Route(body=body.encode(), content_type=XML))
    seeds = [server.url(ws.page_path(p)) for p in SHARED if p.parent.name == "seeds"]
    assert discover_sitemap(server.url("/partial.xml"), settings) == seeds


def test_self_referencing_sitemap_index_terminates(server: Server, settings: Settings) -> None:
    body = ('<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            "<sitemap><loc>/loop.xml</loc></sitemap><sitemap><loc>/loop.xml?again</loc></sitemap></sitemapindex>")
    server.set_route("/loop.xml", Route(body=body.encode(), content_type=XML))
    assert discover_sitemap(server.url("/loop.xml"), settings) == []


def test_gzipped_and_plain_text_sitemaps(server: Server, settings: Settings) -> None:
    urlset = ('<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
              "<url><loc>/x.html</loc></url><url><loc>/y.html</loc></url></urlset>")
    server.set_route("/s.xml.gz", Route(body=gzip.compress(urlset.encode()), content_type="application/x-gzip"))
    assert discover_sitemap(server.url("/s.xml.gz"), settings) == [server.url("/x.html"), server.url("/y.html")]
    server.set_route("/s.txt", page(f"{server.url('/x.html')}\n{server.url('/z.html')}\n", content_type="text/plain"))
    assert discover_sitemap(server.url("/s.txt"), settings) == [server.url("/x.html"), server.url("/z.html")]


def test_a_page_that_is_not_a_sitemap_says_what_to_do(server: Server, settings: Settings) -> None:
    server.set_route("/notmap", page("<html><body><p>hello</p></body></html>"))
    with pytest.raises(DiscoverError, match="cannot read the sitemap") as info:
        discover_sitemap(server.url("/notmap"), settings)
    assert "<urlset>" in str(info.value) and "'sitemap' URL in the sources file" in str(info.value)


def test_sitemap_entities_are_not_expanded(server: Server, settings: Settings) -> None:
    body = ('<?xml version="1.0"?><!DOCTYPE urlset [<!ENTITY x SYSTEM "file:///etc/hostname">]>'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>/p&x;.html</loc></url></urlset>')
    server.set_route("/xxe.xml", Route(body=body.encode(), content_type=XML))
    for url in discover_sitemap(server.url("/xxe.xml"), settings):
        assert Path("/etc/hostname").read_text().strip() not in url


# -- folders -------------------------------------------------------------------------------------
def test_list_folder_is_recursive_sorted_and_skips_hidden_files(tmp_path: Path) -> None:
    for rel in ["b.pdf", "a.md", "sub/c.DOCX", "sub/deeper/d.htm", "e.html", "f.txt",
                ".hidden.txt", ".git/config.txt", "sub/.cache/x.md", "~$lock.docx", "notes.odt", "image.png"]:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    found = [p.relative_to(tmp_path).as_posix() for p in list_folder(tmp_path)]
    assert found == ["a.md", "b.pdf", "e.html", "f.txt", "sub/c.DOCX", "sub/deeper/d.htm"]


def test_list_folder_on_a_file_or_missing_path(tmp_path: Path) -> None:
    doc = tmp_path / "one.pdf"
    doc.write_bytes(b"%PDF-1.4")
    assert list_folder(doc) == [doc]
    with pytest.raises(DiscoverError, match="does not exist; fix 'path' in the sources file"):
        list_folder(tmp_path / "missing")
    odd = tmp_path / "sheet.xlsx"
    odd.write_bytes(b"x")
    with pytest.raises(DiscoverError, match="not a supported document"):
        list_folder(odd)


def test_symlinks_out_of_a_folder_are_not_followed_unless_asked(tmp_path) -> None:
    from ingest.discover import list_folder

    outside = tmp_path / "secret.txt"
    outside.write_text("not a document of this source", encoding="utf-8")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("a filing", encoding="utf-8")
    (folder / "leak.txt").symlink_to(outside)
    (folder / "alias.txt").symlink_to(folder / "a.txt")   # inside the folder: fine
    assert [p.name for p in list_folder(folder)] == ["a.txt", "alias.txt"]
    assert [p.name for p in list_folder(folder, follow_symlinks=True)] == ["a.txt", "alias.txt", "leak.txt"]
