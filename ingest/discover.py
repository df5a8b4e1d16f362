"""Find the items of a source: the entries of an RSS/Atom feed, the pages of a sitemap, the files of a folder.

Feeds are parsed with feedparser and sitemaps with lxml rather than trafilatura's helpers, which
drop links on hosts without a public domain name (127.0.0.1, intranet names) and links to other
domains, and fetch without our robots/SSRF/size rules. Feed and sitemap bytes come from fetch_url.
"""
from __future__ import annotations

import gzip
import io
import logging
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import feedparser
from lxml import etree

from ingest.fetch import FetchError, FetchResult, fetch_url
from kb.settings import Settings

log = logging.getLogger(__name__)

DOCUMENT_SUFFIXES = frozenset({".html", ".htm", ".pdf", ".txt", ".md", ".docx"})
MAX_SITEMAP_DEPTH = 3         # index -> index -> index -> urlset
MAX_SITEMAPS = 100            # sitemap files read per discovery
MAX_SITEMAP_URLS = 50_000     # the sitemap protocol's own limit per file
_FEED_LINK = re.compile(rb"<link\b[^>]*>", re.I)
_ATTR = re.compile(rb"""([a-zA-Z-]+)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""")
_FEED_TYPES = (b"application/rss+xml", b"application/atom+xml", b"application/feed+json", b"application/rdf+xml")


class DiscoverError(FetchError):
    """A feed, sitemap or folder could not be read; the message says what to do."""


def _dedupe(urls: list[str]) -> list[str]:
    """Unique http(s) URLs without fragments, in first-seen order."""
    seen: dict[str, None] = {}
    for url in urls:
        url = urldefrag(url.strip())[0]
        if url and urlsplit(url).scheme in ("http", "https"):
            seen.setdefault(url, None)
    return list(seen)


# -- feeds -----------------------------------------------------------------------------------------
def _entry_link(entry: dict, base: str) -> str:
    """The page an RSS/Atom entry points at, absolute."""
    link = entry.get("link") or ""
    if not link:
        alternates = [lk.get("href", "") for lk in entry.get("links", []) if lk.get("rel", "alternate") == "alternate"]
        link = next((h for h in alternates if h), "")
    if not link and str(entry.get("id", "")).startswith(("http://", "https://")):
        link = entry["id"]
    return urljoin(base, link) if link else ""


def _alternate_feed(html: bytes, base: str) -> str:
    """The first <link rel="alternate" type="…rss/atom…"> of an HTML page, absolute, or ''."""
    for tag in _FEED_LINK.findall(html[:200_000]):
        attrs = {k.lower(): v.strip(b"\"'") for k, v in _ATTR.findall(tag)}
        if b"alternate" in attrs.get(b"rel", b"").lower() and attrs.get(b"type", b"").lower() in _FEED_TYPES:
            return urljoin(base, attrs.get(b"href", b"").decode("utf-8", errors="replace"))
    return ""


def parse_feed(result: FetchResult) -> Any:
    """feedparser's view of fetched feed bytes (never fetches anything itself)."""
    ctype = result.content_type + (f"; charset={result.encoding}" if result.encoding else "")
    headers = {"content-location": result.final_url, "content-type": ctype or "application/xml"}
    return feedparser.parse(result.content, response_headers=headers)


def discover_feed(url: str, settings: Settings) -> list[str]:
    """Item links of an RSS/Atom feed (or of the feed an HTML page advertises), absolute, deduplicated."""
    result = fetch_url(url, settings)
    parsed = parse_feed(result)
    if not parsed.get("version") and not parsed.entries:
        alternate = _alternate_feed(result.content, result.final_url)
        if alternate and alternate != result.final_url:
            log.info("%s is a web page; following its feed %s", url, alternate)
            result = fetch_url(alternate, settings)
            parsed = parse_feed(result)
    if not parsed.get("version") and not parsed.entries:
        reason = f"served as {result.content_type or 'an unknown type'}: {parsed.get('bozo_exception') or 'no entries'}"
        raise DiscoverError(url, f"{url} is not an RSS or Atom feed ({reason}); check the 'feed' URL in "
                                 "the sources file (use 'sitemap' or 'url' for other pages)")
    links = _dedupe([_entry_link(e, result.final_url) for e in parsed.entries])
    log.info("feed %s: %d items", url, len(links))
    return links


# -- sitemaps --------------------------------------------------------------------------------------
def _local(tag: object) -> str:
    """Tag name without its namespace."""
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _ungzip(data: bytes, limit: int) -> bytes:
    """Decompress a .xml.gz sitemap, refusing more than ``limit`` bytes."""
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as fh:
        out = fh.read(limit + 1)
    if len(out) > limit:
        raise ValueError(f"decompressed sitemap exceeds {limit} bytes")
    return out


def parse_sitemap(data: bytes, base: str) -> tuple[str, list[str]]:
    """(kind, absolute locations) of a sitemap: kind is 'index', 'urlset' or 'text'."""
    stripped = data.lstrip()
    if not stripped.startswith(b"<"):
        lines = [ln.strip() for ln in data.decode("utf-8", errors="replace").splitlines()]
        return "text", [ln for ln in lines if ln.startswith(("http://", "https://"))]
    parser = etree.XMLParser(resolve_entities=False, no_network=True, recover=True, huge_tree=False)
    root = etree.fromstring(stripped, parser=parser)
    if root is None or _local(root.tag) not in ("sitemapindex", "urlset"):
        raise ValueError(f"the root element is <{_local(root.tag) if root is not None else '?'}>, "
                         "not <urlset> or <sitemapindex>")
    child = "sitemap" if _local(root.tag) == "sitemapindex" else "url"
    locs = [(loc.text or "").strip() for entry in root if _local(entry.tag) == child
            for loc in entry if _local(loc.tag) == "loc"]
    return ("index" if child == "sitemap" else "urlset"), [urljoin(base, loc) for loc in locs if loc]


def _read_sitemap(url: str, settings: Settings) -> tuple[str, list[str]]:
    """Fetch and parse one sitemap file."""
    result = fetch_url(url, settings)
    data = result.content
    if data[:2] == b"\x1f\x8b":
        data = _ungzip(data, settings.max_bytes)
    return parse_sitemap(data, result.final_url)


def discover_sitemap(url: str, settings: Settings) -> list[str]:
    """Page URLs of a sitemap, following sitemap index files (bounded depth and count)."""
    pages: list[str] = []
    queue, seen = [(url, 0)], {url}
    while queue and len(seen) <= MAX_SITEMAPS:
        current, depth = queue.pop(0)
        try:
            kind, locs = _read_sitemap(current, settings)
        except (FetchError, ValueError, etree.XMLSyntaxError, OSError) as err:
            if current == url:
                raise DiscoverError(url, f"cannot read the sitemap {url}: {err}; check the 'sitemap' URL in "
                                         "the sources file") from err
            log.warning("skipping child sitemap %s of %s: %s", current, url, err)
            continue
        if kind != "index":
            pages.extend(locs[:MAX_SITEMAP_URLS])
            continue
        if depth >= MAX_SITEMAP_DEPTH:
            log.warning("sitemap index %s nested deeper than %d levels: not followed", current, MAX_SITEMAP_DEPTH)
            continue
        for loc in locs:
            if loc not in seen:
                seen.add(loc)
                queue.append((loc, depth + 1))
    if queue:
        log.warning("sitemap %s: stopped after %d sitemap files", url, MAX_SITEMAPS)
    links = _dedupe(pages)
    log.info("sitemap %s: %d pages", url, len(links))
    return links


# -- folders ---------------------------------------------------------------------------------------
def _is_document(path: Path) -> bool:
    """A file we can ingest: known extension, not hidden, not an editor lock file."""
    return path.suffix.lower() in DOCUMENT_SUFFIXES and not path.name.startswith((".", "~$"))


def _inside(link: Path, folder: Path) -> bool:
    try:
        link.resolve().relative_to(folder.resolve())
    except (ValueError, OSError):
        return False
    return True


def list_folder(path: Path, follow_symlinks: bool = False) -> list[Path]:
    """Documents (.html .htm .pdf .txt .md .docx) under a folder, recursively, sorted, hidden ones skipped.

    Only regular files count; a symlink counts when it resolves inside the folder, or anywhere with
    ``follow_symlinks`` (a link to ``/etc/passwd`` or ``/proc/self/environ`` is never read otherwise).
    """
    path = Path(path)
    if path.is_file():
        if not _is_document(path):
            raise DiscoverError(str(path), f"{path} is not a supported document (.html .htm .pdf .txt .md "
                                           ".docx); convert it or point 'path' at another file")
        return [path]
    if not path.is_dir():
        raise DiscoverError(str(path), f"{path} does not exist; fix 'path' in the sources file or create the folder")
    found: list[Path] = []
    for root, dirs, files in os.walk(path, onerror=lambda err: log.warning("cannot list %s", err)):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            f = Path(root) / name
            if not _is_document(f):
                continue
            if f.is_symlink() and not follow_symlinks and not _inside(f, path):
                log.warning("skipping %s: a symlink out of %s (set follow_symlinks: true to read it)", f, path)
                continue
            if f.resolve().is_file():
                found.append(f)
    return sorted(found, key=lambda p: p.relative_to(path).as_posix())
