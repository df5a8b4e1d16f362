"""``describe_page`` and ``classify``: what ingest tells the registry about a changed page (no I/O)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ingest.dedup import Match
from ingest.fetch import FetchResult
from ingest.pipeline import Item, PageDescription, Prepared, classify, describe_page
from ingest.sources import Source
from kb.evidence.extract import Page
from kb.registry import VersionRow
from kb.registry.ids import text_sha, version_id_for
from kb.times import FOREVER, epoch_of_iso

ENGLISH = ("The court denied the motion for a preliminary injunction on Tuesday after a long hearing. "
           "The judge said the plaintiff had not shown that the harm was irreparable, and set a trial date.\n\n"
           "Counsel for the defendant welcomed the ruling and said the company would keep serving its customers.")
FRENCH = ("Le tribunal a rejeté mardi la demande de mesures provisoires après une longue audience. "
          "Le juge a estimé que le demandeur n'avait pas démontré un préjudice irréparable.")
NUMBERS = "2024 2025 2026 — 10 20 30 40 50 60 70 80 90 — 1.1 2.2 3.3 4.4 5.5"
RETRIEVED = "2026-05-01T12:00:00Z"
DOC = "doc0000000000001"


def source(**changes: object) -> Source:
    base = Source(name="news", kind="url", targets=("https://example.org/a",), doctype="news")
    return replace(base, **changes) if changes else base


def page(text: str = ENGLISH, **changes: object) -> Page:
    base = Page(text=text, title="Injunction denied", author="A. Reporter", date="2026-04-30",
                sitename="Example Times", url="", language="", doctype="", meta={"description": "a ruling"})
    return replace(base, **changes) if changes else base


def fetched(**changes: object) -> FetchResult:
    base = FetchResult(url="https://example.org/a?utm_source=x", final_url="https://example.org/a", status=200,
                       content=b"<html></html>", content_type="text/html", encoding="utf-8", etag='"v1"',
                       last_modified="Thu, 30 Apr 2026 10:00:00 GMT", not_modified=False, retrieved=RETRIEVED)
    return replace(base, **changes) if changes else base


def prepared(src: Source | None = None, pg: Page | None = None, result: FetchResult | None = None,
             location: str = "https://example.org/a?utm_source=x", is_file: bool = False) -> Prepared:
    return Prepared(Item(src or source(), location, is_file), DOC, result or fetched(), pg or page(),
                    snapshot_sha="ab" * 32)


def latest(valid_from: int, text: str = "an earlier text", **changes: object) -> VersionRow:
    sha = text_sha(text)
    base = VersionRow(version_id=version_id_for(DOC, sha), doc_id=DOC, text_sha=sha, snapshot_sha=None,
                      retrieved="2026-04-01T00:00:00Z", valid_from=valid_from, valid_to=FOREVER, title="t",
                      language="en", published="", effective_date="", status="indexed", n_chunks=1)
    return replace(base, **changes) if changes else base


def describe(p: Prepared | None = None, last: VersionRow | None = None, match: Match | None = None,
             exists: set[str] | None = None) -> PageDescription:
    known = exists or set()
    return describe_page(p or prepared(), last, match, "exact-key", b"sig", "2026-05-01T12:00:05Z", known.__contains__)


# -- language ---------------------------------------------------------------------------------------
def test_language_of_the_source_wins_over_detection_and_declaration() -> None:
    d = describe(prepared(src=source(language="de"), pg=page(ENGLISH, language="fr")))
    assert d.document.language == d.version.language == "de"


def test_language_is_detected_when_the_source_says_auto() -> None:
    d = describe(prepared(pg=page(FRENCH, language="en")))
    assert d.document.language == d.version.language == "fr"
    assert d.version.meta["declared_language"] == "en"


def test_declared_language_is_used_when_detection_is_unsure() -> None:
    d = describe(prepared(pg=page(NUMBERS, language="es")))
    assert d.document.language == "es"
    assert describe(prepared(pg=page(NUMBERS, language=""))).document.language == "und"


def test_chunks_carry_their_own_detected_language() -> None:
    d = describe(prepared(src=source(language="de")))
    assert d.chunks and {c.language for c in d.chunks} == {"en"}


# -- identity URL -----------------------------------------------------------------------------------
def test_url_is_the_pages_canonical_when_it_names_one() -> None:
    d = describe(prepared(pg=page(url="https://example.org/canonical")))
    assert d.document.url == "https://example.org/canonical"
    assert d.document.location == "https://example.org/a?utm_source=x"


def test_a_canonical_on_another_site_cannot_claim_its_identity() -> None:
    """A page served from 127.0.0.1 saying it is openai.com's terms is stored under its own URL."""
    d = describe(prepared(pg=page(url="https://openai.com/policies/terms-of-use/"),
                          result=fetched(url="http://127.0.0.1:8000/fake", final_url="http://127.0.0.1:8000/fake"),
                          location="http://127.0.0.1:8000/fake"))
    assert d.document.url == "http://127.0.0.1:8000/fake"
    assert d.version.meta["claimed_url"] == "https://openai.com/policies/terms-of-use/"


def test_a_canonical_on_the_same_registrable_domain_is_accepted() -> None:
    d = describe(prepared(pg=page(url="https://www.example.org/story")))
    assert d.document.url == "https://www.example.org/story"


def test_a_canonical_owned_by_another_source_is_refused() -> None:
    p = prepared(pg=page(url="https://example.org/genuine"))
    d = describe_page(p, None, None, "k", b"s", "2026-05-01T12:00:05Z", lambda _v: False,
                      url_owner=lambda url: "genuine-source" if url.endswith("/genuine") else None)
    assert d.document.url == "https://example.org/a" and d.version.meta["claimed_url"].endswith("/genuine")


def test_same_site() -> None:
    from ingest.pipeline import same_site

    assert same_site("https://news.bbc.co.uk/a", "https://www.bbc.co.uk/b")
    assert not same_site("https://openai.com/x", "https://openai.com.evil.example/x")
    assert not same_site("https://openai.com/x", "http://127.0.0.1:8000/x")
    assert same_site("http://127.0.0.1:8000/a", "http://127.0.0.1:8000/b")
    assert not same_site("http://127.0.0.1:8000/a", "http://127.0.0.1:9000/b")


def test_url_is_the_final_url_after_redirects_otherwise() -> None:
    d = describe(prepared(result=fetched(final_url="https://example.org/moved")))
    assert d.document.url == "https://example.org/moved"


def test_url_of_a_file_is_its_file_uri(tmp_path: Path) -> None:
    f = tmp_path / "terms.txt"
    d = describe(prepared(src=source(kind="path", targets=(str(tmp_path),)), pg=page(sitename=""), location=str(f),
                          is_file=True, result=fetched(url=str(f), final_url=str(f), etag=None, last_modified=None)))
    assert d.document.url == f.resolve().as_uri() and d.document.url.startswith("file://")
    assert d.document.location == str(f)
    assert d.document.publisher == ""  # a file URI has no host to name


def test_publisher_and_title_fall_back_to_the_url() -> None:
    d = describe(prepared(pg=page(sitename="", title="")))
    assert d.document.publisher == "example.org" and d.document.title == "https://example.org/a"
    d = describe(prepared(src=source(publisher="The Source", title="Source title"), pg=page(title="")))
    assert d.document.publisher == "The Source" and d.document.title == "Source title"


# -- doctype ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("own", ["news", "tos", "court", "blog"])
def test_doctype_of_the_page_when_it_is_one_we_know(own: str) -> None:
    assert describe(prepared(src=source(doctype="other"), pg=page(doctype=own))).document.doctype == own


@pytest.mark.parametrize("own", ["", "article", "webpage"])
def test_doctype_of_the_source_otherwise(own: str) -> None:
    assert describe(prepared(src=source(doctype="tos"), pg=page(doctype=own))).document.doctype == "tos"


# -- chunks, ids, validity --------------------------------------------------------------------------
def test_a_new_page_gets_chunks_that_cover_its_text() -> None:
    d = describe()
    assert d.chunks and [c.seq for c in d.chunks] == list(range(len(d.chunks)))
    assert all(ENGLISH[c.start:c.end] == c.text for c in d.chunks)
    assert d.version.text == ENGLISH and d.version.text_sha == text_sha(ENGLISH)
    assert d.version.version_id == version_id_for(DOC, text_sha(ENGLISH))
    assert (d.version.status, d.version.valid_to, d.version.snapshot_sha) == ("pending", FOREVER, "ab" * 32)
    assert d.document.duplicate_of is None and d.document.etag == '"v1"'
    assert d.document.published == "2026-04-30" and d.document.checked == "2026-05-01T12:00:05Z"
    assert d.version.meta["exact_key"] == "exact-key" and d.version.meta["description"] == "a ruling"
    assert d.version.signature == b"sig"


def test_a_duplicate_gets_no_chunks_and_names_its_canonical() -> None:
    d = describe(match=Match("canonical-doc", "near", 0.93))
    assert d.chunks == []
    assert (d.document.duplicate_of, d.document.duplicate_kind, d.document.duplicate_score) == \
        ("canonical-doc", "near", 0.93)
    assert d.version.text == ENGLISH  # the text is still kept as a version


def test_a_text_that_returns_to_an_earlier_version_gets_a_new_version_id() -> None:
    plain = version_id_for(DOC, text_sha(ENGLISH))
    first = describe()
    assert first.version.version_id == plain
    back = describe(last=latest(valid_from=100), exists={plain})
    assert back.version.version_id != plain
    assert back.version.version_id == version_id_for(DOC, text_sha(ENGLISH), back.version.valid_from)


def test_valid_from_is_the_retrieval_time() -> None:
    assert describe().version.valid_from == int(epoch_of_iso(RETRIEVED) or 0)
    earlier = int(epoch_of_iso(RETRIEVED) or 0) - 3600
    assert describe(last=latest(valid_from=earlier)).version.valid_from == int(epoch_of_iso(RETRIEVED) or 0)


@pytest.mark.parametrize("offset", [0, 3600])
def test_valid_from_comes_after_the_latest_versions(offset: int) -> None:
    """A clock that went back (or two fetches in one second) still gives a later validity start."""
    later = int(epoch_of_iso(RETRIEVED) or 0) + offset
    assert describe(last=latest(valid_from=later)).version.valid_from == later + 1


# -- classify ---------------------------------------------------------------------------------------
def test_classify_a_copy_as_duplicate() -> None:
    m = Match("other", "exact", 1.0)
    assert classify(None, None, m) == "duplicate"
    assert classify(latest(1), {"duplicate_of": None}, m) == "duplicate"


def test_classify_a_first_version_as_new() -> None:
    assert classify(None, None, None) == "new"
    assert classify(None, {"duplicate_of": None}, None) == "new"


def test_classify_a_former_copy_standing_alone_as_new() -> None:
    assert classify(latest(1), {"doc_id": DOC, "duplicate_of": "other"}, None) == "new"


def test_classify_a_changed_canonical_document_as_updated() -> None:
    assert classify(latest(1), {"doc_id": DOC, "duplicate_of": None}, None) == "updated"
    assert classify(latest(1), None, None) == "updated"
