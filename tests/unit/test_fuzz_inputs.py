"""Mutated HTML, PDF, DOCX, feeds, sitemaps and sources files through discovery, extraction and chunking.

A seeded mutation fuzzer (no third-party fuzzing library): every mutated input must finish within
``PER_INPUT_SECONDS`` and either give a result or raise one of our own errors (``KBError``); memory
growth over the whole run stays under ``MAX_RSS_GROWTH_MIB``. The seeds are small documents written
here; ``KB_FUZZ_ROUNDS`` sets how many mutations each seed gets (default 25, about 20 s in all).
"""
from __future__ import annotations

import io
import os
import random
import resource
import time
from pathlib import Path

import pytest

from ingest.chunking import chunk_text
from ingest.discover import parse_feed, parse_sitemap
from ingest.fetch import FetchResult
from ingest.sources import load_sources
from kb.errors import KBError
from kb.evidence.extract import extract_document

ROUNDS = int(os.environ.get("KB_FUZZ_ROUNDS", "25"))
PER_INPUT_SECONDS = 5.0
MAX_RSS_GROWTH_MIB = 1024  # the bound the integrity issue sets (feedparser alone can take ~600 MiB on 250 KB)

HTML = ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Harbour notice</title>"
        "<link rel='canonical' href='https://gazette.example/notice'></head><body><nav><a href='/'>Home</a></nav>"
        "<article><h1>Harbour notice</h1><p>The harbour authority publishes every lighthouse inspection report "
        "within ten days.</p><p>प्राधिकरण हर निरीक्षण रिपोर्ट प्रकाशित करता है। 港口管理局公布每份检查报告。</p>"
        "<table><tr><td>2024</td><td>12 reports</td></tr></table></article></body></html>").encode()
FEED = (b"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title><link>https://gazette.example/</link>"
        b"<item><title>a</title><link>https://gazette.example/a</link></item>"
        b"<item><title>b</title><link>https://gazette.example/b</link></item></channel></rss>")
SITEMAP = (b"<?xml version='1.0'?><urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>"
           b"<url><loc>https://gazette.example/a</loc></url><url><loc>https://gazette.example/b</loc></url></urlset>")
YAML = (b"defaults:\n  refresh: 6h\nsources:\n  - name: notices\n    url: https://gazette.example/notice\n"
        b"    doctype: news\n  - name: folder\n    path: docs\n    exclude: [README.md]\n")


def _docx() -> bytes:
    import docx

    d = docx.Document()
    d.add_heading("Licence", 1)
    d.add_paragraph("2.1 Restrictions. The licensee shall not use outputs to train a competing model.")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def _pdf() -> bytes:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.drawString(72, 720, "The licensee shall not resell the model or remove notices.")
    c.showPage()
    c.drawString(72, 720, "Second page: outputs may not train a competing model.")
    c.save()
    return buf.getvalue()


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One of: flip bytes, truncate, duplicate a slice many times, splice in markup, insert NULs."""
    b = bytearray(data)
    kind = rng.randrange(6)
    if kind == 0 and b:
        for _ in range(rng.randint(1, 20)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 1:
        b = b[:rng.randrange(len(b) + 1)]
    elif kind == 2 and b:
        i = rng.randrange(len(b))
        j = min(len(b), i + rng.randint(1, 200))
        b[i:i] = bytes(b[i:j]) * rng.randint(2, 2000)
    elif kind == 3:
        junk = rng.choice([b"<div>" * 500, b"</p>" * 300, b"<![CDATA[", b"&#x0;&#xFFFF;&amp", b"\xff\xfe", b"\x00" * 64,
                           b"<script>" + b"a" * 5000, b"*a: &a [1]\n", b"\xe0\xa4"])
        b[rng.randrange(len(b) + 1):0] = junk
    elif kind == 4:
        b = bytearray(rng.randbytes(rng.randint(0, 4000)))
    else:
        b = bytearray(data + data[: rng.randrange(len(data) + 1)])
    return bytes(b)


def _result(data: bytes, content_type: str, url: str) -> FetchResult:
    return FetchResult(url=url, final_url=url, status=200, content=data, content_type=content_type, encoding=None,
                       etag=None, last_modified=None, not_modified=False, retrieved="2026-05-01T00:00:00Z")


def _extract_and_chunk(data: bytes, content_type: str, name: str) -> None:
    page = extract_document(_result(data, content_type, f"https://gazette.example/{name}"), name)
    for c in chunk_text(page.text):
        assert page.text[c.start:c.end] == c.text


def _sitemap(data: bytes) -> None:
    """parse_sitemap's documented failures (ValueError, XMLSyntaxError) become DiscoverError in its caller."""
    from lxml import etree

    try:
        parse_sitemap(data, "https://gazette.example/sitemap.xml")
    except (ValueError, etree.XMLSyntaxError):
        pass


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.slow
def test_mutated_inputs_finish_quickly_and_fail_only_with_our_errors(tmp_path: Path) -> None:
    seeds = {
        "html": (HTML, lambda d: _extract_and_chunk(d, "text/html", "notice.html")),
        "pdf": (_pdf(), lambda d: _extract_and_chunk(d, "application/pdf", "licence.pdf")),
        "docx": (_docx(), lambda d: _extract_and_chunk(
            d, "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "licence.docx")),
        "feed": (FEED, lambda d: parse_feed(_result(d, "application/rss+xml", "https://gazette.example/feed"))),
        "sitemap": (SITEMAP, _sitemap),
        "yaml": (YAML, lambda d: (tmp_path / "s.yaml").write_bytes(d) and load_sources(tmp_path / "s.yaml")),
    }
    rng = random.Random(20261202)
    start_rss = _rss_mib()
    slowest = (0.0, "")
    for name, (seed, run) in seeds.items():
        for i in range(ROUNDS):
            data = seed if i == 0 else mutate(seed, rng)
            t = time.perf_counter()
            try:
                run(data)
            except KBError:
                pass  # a clear error of ours is the right outcome for a broken input
            took = time.perf_counter() - t
            slowest = max(slowest, (took, f"{name} #{i}"))
            grown = _rss_mib() - start_rss
            assert grown < MAX_RSS_GROWTH_MIB, f"{name} mutation {i} ({len(data)} bytes) raised memory by {grown:.0f} MiB"
            assert took < PER_INPUT_SECONDS, f"{name} mutation {i} took {took:.1f} s"
    assert _rss_mib() - start_rss < MAX_RSS_GROWTH_MIB, "memory grew past the bound"
