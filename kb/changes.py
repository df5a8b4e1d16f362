"""What changed: new documents and new versions of known ones, newest first, each version with its diff.

    >>> changes = list_changes(registry, since="2026-04-01", source="xai-aup", limit=20)
    >>> render_atom(changes, self_url="file:///srv/kb/data/changes.atom")   # bytes of an Atom 1.0 feed

A *new document* is the first indexed version of a canonical document; a *new version* is an
indexed version that replaced an earlier one of the same document, and carries the paragraph
changes from that earlier version (``kb.diff.diff_texts``). Copies folded under a canonical document
are neither. ``since`` takes a date or an ISO-8601 date-time (``kb.times.parse_when``); a bare date
means from the start of that day, as ``--since`` does elsewhere. The same list renders as Markdown
(scraped text escaped or fenced, so it forms no link or HTML), one JSON object, or an Atom feed
built with ``xml.etree``; ``write_feed`` rewrites ``<data>/changes.atom`` after every ingest run.
"""
from __future__ import annotations

import json
import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kb.diff import ParagraphChange, diff_texts, mark_words, paragraphs
from kb.errors import KBError, UsageError
from kb.registry import Registry
from kb.times import date_ts, day_of, iso_of_epoch, now_iso, parse_when

FORMATS = ("md", "json", "atom")
MEDIA_TYPES = {"md": "text/markdown; charset=utf-8", "json": "application/json",
               "atom": "application/atom+xml"}
#: The file the ingester rewrites after every run, in the data directory.
FEED_NAME = "changes.atom"
#: How many changes the ingester's feed holds (newest first).
FEED_LIMIT = 100
#: Characters of a new document's first paragraph kept as its excerpt.
EXCERPT_CHARS = 400
ATOM = "http://www.w3.org/2005/Atom"
_NS = uuid.UUID("6b1c7c0e-1d7a-4f0e-9a59-2f3c6f1b7a10")   # names the feed's and entries' urn:uuid ids


@dataclass
class Change:
    """One new document or new version, with the metadata a journalist needs and its diff counts."""

    kind: str                     # "document" (a new document) | "version" (it replaced an earlier one)
    doc_id: str
    version_id: str
    previous_version_id: str | None
    title: str
    url: str
    publisher: str
    source: str
    doctype: str
    language: str
    published: str                # as stored: a date, a date-time or ""
    retrieved: str                # ISO-8601 UTC
    valid_from: int               # epoch seconds: when the index started holding this version
    added: int = 0
    removed: int = 0
    changed: int = 0
    unchanged: int = 0
    paragraphs: list[ParagraphChange] = field(default_factory=list)
    excerpt: str = ""             # a new document's first paragraph (clipped)
    note: str = ""                # why there is no diff (e.g. a stored text failed its hash check)

    @property
    def is_new_document(self) -> bool:
        return self.kind == "document"

    def counts(self) -> dict[str, int]:
        return {"added": self.added, "removed": self.removed, "changed": self.changed, "unchanged": self.unchanged}

    def summary(self) -> str:
        """One line: what kind of change and how many paragraphs it touched."""
        if self.is_new_document:
            return f"New document: {self.added} paragraph(s)"
        text = (f"New version: {self.added} paragraph(s) added, {self.removed} removed, {self.changed} changed, "
                f"{self.unchanged} unchanged")
        return text + (f" ({self.note})" if self.note else "")

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "doc_id": self.doc_id, "version_id": self.version_id,
                "previous_version_id": self.previous_version_id, "title": self.title, "url": self.url,
                "publisher": self.publisher, "source": self.source, "doctype": self.doctype,
                "language": self.language, "published": self.published, "retrieved": self.retrieved,
                "valid_from": self.valid_from, "counts": self.counts(), "excerpt": self.excerpt, "note": self.note,
                "changes": [c.to_json() for c in self.paragraphs]}


@dataclass
class ChangeList:
    """The changes shown (newest first), what selected them, and how many matched before ``limit``."""

    changes: list[Change]
    generated: str
    since: str | None = None
    source: str | None = None
    matched: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"generated": self.generated, "since": self.since, "source": self.source, "matched": self.matched,
                "shown": len(self.changes), "changes": [c.to_json() for c in self.changes]}


@dataclass(frozen=True)
class TimelineEvent:
    """One point of the timeline: a document published, or one of its versions retrieved, on a day."""

    day: str                      # YYYY-MM-DD
    event: str                    # "published" | "retrieved"
    title: str
    source: str
    publisher: str
    doc_id: str


# -- selecting -----------------------------------------------------------------------------------
def since_epoch(since: str | None) -> int:
    """Epoch seconds from which changes count (0 for no limit); ``UsageError`` for a value that is no date."""
    if not since or not since.strip():
        return 0
    try:
        parse_when(since)
    except ValueError:
        raise UsageError(f"--since {since.strip()!r} is not a date; use YYYY-MM-DD or an ISO-8601 date-time") from None
    return date_ts(since)   # a bare date: from the start of that day


def check_source(registry: Registry, source: str | None) -> None:
    """``UsageError`` naming the known sources when ``source`` has no document in the index."""
    if source is None:
        return
    known = registry.document_sources()
    if source not in known:
        names = ", ".join(sorted(known)) or "none yet"
        raise UsageError(f"--source {source!r} is not a source of this index; known sources: {names}")


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def _diff(registry: Registry, change: Change) -> None:
    """Fill in the paragraph changes (a new version) or the paragraph count and excerpt (a new document)."""
    try:
        new = registry.version_text(change.version_id)
        if change.previous_version_id is None:
            paras = paragraphs(new)
            change.added = len(paras)
            change.excerpt = _clip(paras[0].text, EXCERPT_CHARS) if paras else ""
            return
        old = registry.version_text(change.previous_version_id)
    except KBError as exc:
        change.note = f"no diff: {exc}"
        return
    change.paragraphs, change.unchanged = diff_texts(old, new)
    for p in change.paragraphs:
        setattr(change, p.op, getattr(change, p.op) + 1)


def list_changes(registry: Registry, since: str | None = None, source: str | None = None,
                 limit: int | None = None) -> ChangeList:
    """New documents and new versions, newest first; ``since`` a date, ``source`` one source name.

    Bad ``since`` or unknown ``source`` raise ``UsageError``. Only the ``limit`` newest changes are
    diffed (their stored texts are hash-checked; a failed check leaves a ``note`` instead of a diff).
    """
    start = since_epoch(since)
    check_source(registry, source)
    if limit is not None and limit < 1:
        raise UsageError("--limit must be 1 or more")
    found: list[Change] = []
    previous: dict[str, str] = {}
    for r in registry.canonical_version_rows(source):   # by document, oldest version first
        prev = previous.get(r["doc_id"])
        previous[r["doc_id"]] = r["version_id"]
        if r["valid_from"] < start:
            continue
        found.append(Change(
            kind="document" if prev is None else "version", doc_id=r["doc_id"], version_id=r["version_id"],
            previous_version_id=prev, title=r["title"] or "", url=r["url"] or "", publisher=r["publisher"] or "",
            source=r["source"] or "", doctype=r["doctype"] or "other", language=r["language"] or "und",
            published=r["published"] or "", retrieved=r["retrieved"] or iso_of_epoch(r["valid_from"]),
            valid_from=int(r["valid_from"])))
    found.sort(key=lambda c: (c.valid_from, c.version_id), reverse=True)
    shown = found[:limit] if limit else found
    for c in shown:
        _diff(registry, c)
    return ChangeList(shown, now_iso(), since, source, len(found))


def timeline_events(registry: Registry, source: str | None = None) -> list[TimelineEvent]:
    """Publication days of the indexed canonical documents and the retrieval day of each indexed version."""
    out: list[TimelineEvent] = []
    seen: set[str] = set()
    for r in registry.canonical_version_rows(source):
        title, src, pub = r["title"] or r["url"] or "", r["source"] or "", r["publisher"] or ""
        if r["doc_id"] not in seen:
            seen.add(r["doc_id"])
            published = day_of(r["published"])
            if published:
                out.append(TimelineEvent(published.isoformat(), "published", title, src, pub, r["doc_id"]))
        out.append(TimelineEvent(iso_of_epoch(r["valid_from"])[:10], "retrieved", title, src, pub, r["doc_id"]))
    return sorted(out, key=lambda e: (e.day, e.event, e.doc_id))


# -- Markdown ------------------------------------------------------------------------------------
def _code(text: str) -> str:
    """Inline code (inert in Markdown) holding ``text`` on one line."""
    text = " ".join((text or "").split())
    ticks = "`" * (1 + max(_tick_runs(text), default=0))
    return f"{ticks} {text} {ticks}" if text else ""


def _tick_runs(text: str) -> list[int]:
    """Lengths of the runs of backticks in ``text``."""
    runs, n = [], 0
    for ch in text + " ":
        if ch == "`":
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs


def diff_lines(change: Change) -> list[str]:
    """The paragraph changes as text lines: ``+`` added, ``-`` removed, ``~`` changed with [-old-]{+new+}."""
    out: list[str] = []
    for p in change.paragraphs:
        if p.op == "added":
            out.append("+ " + " ".join(p.new.split()))
        elif p.op == "removed":
            out.append("- " + " ".join(p.old.split()))
        else:
            out.append("~ " + " ".join(mark_words(p.words).split()))
    return out


def _fenced(lines: list[str], info: str = "diff") -> list[str]:
    """Lines in a fenced code block (no link, image or HTML renders inside), fence longer than any inside."""
    fence = "`" * max(3, 1 + max((n for line in lines for n in _tick_runs(line)), default=0))
    return [f"{fence}{info}", *lines, fence]


#: Bare URLs and e-mail addresses that GFM would turn into links (broken with an invisible word joiner).
_AUTOLINK = re.compile(r"(?i)(https?|ftp|mailto|www)(?=[:.])|(@)(?=[\w-])")


def md_text(text: str) -> str:
    """Scraped text as inert Markdown on one line: ``md_escape`` plus no autolinked URL or address."""
    from kb.export.render_md import md_escape

    return _AUTOLINK.sub(lambda m: m.group(0) + "\u2060", md_escape(text))


def render_markdown(changes: ChangeList) -> bytes:
    """The changes as UTF-8 Markdown: scraped titles escaped, URLs and paragraphs in code (inert)."""
    from kb.export.render_md import doctype_name
    from kb.text.language import language_name

    scope = f"since {changes.since}" if changes.since else "all time"
    out = ["# What changed", "", f"- Generated: {changes.generated}",
           f"- Scope: {md_text(scope)}; source: {md_text(changes.source or 'all sources')}",
           f"- Changes: {changes.matched} (showing {len(changes.changes)}, newest first)", ""]
    if not changes.changes:
        out += ["Nothing changed in this period.", ""]
    for i, c in enumerate(changes.changes, start=1):
        label = "New document" if c.is_new_document else "New version"
        out += [f"## {i}. {label}: {md_text(c.title or c.url)}", ""]
        facts = [("URL", _code(c.url) or "none recorded"), ("Publisher", md_text(c.publisher or "unknown")),
                 ("Source", md_text(c.source)), ("Type", doctype_name(c.doctype)),
                 ("Language", md_text(language_name(c.language))),
                 ("Published", md_text(c.published or "not stated")), ("Retrieved", _code(c.retrieved)),
                 ("Version", _code(c.version_id) + (f" (replaces {_code(c.previous_version_id)})"
                                                    if c.previous_version_id else "")),
                 ("Paragraphs", c.summary().split(": ", 1)[1])]
        out += [f"- {name}: {value}" for name, value in facts] + [""]
        if c.excerpt:
            out += ["First paragraph:", "", *_fenced([c.excerpt], "text"), ""]
        lines = diff_lines(c)
        if lines:
            out += [*_fenced(lines), ""]
    return "\n".join(out).encode("utf-8")


def render_json(changes: ChangeList) -> dict[str, Any]:
    """The changes as one JSON-ready object (print it with ``kb.cli.framework.print_json``)."""
    return changes.to_json()


# -- Atom ----------------------------------------------------------------------------------------
def _rfc3339(value: str, fallback: int | None = None) -> str | None:
    """A stored date or date-time as an RFC 3339 UTC timestamp (a bare date: its midnight); None when unknown."""
    seconds = date_ts(value) or fallback
    return iso_of_epoch(seconds) if seconds else None


def _href(url: str) -> str:
    """The document URL as an IRI for ``<link href>`` (a bare absolute path becomes a file: URI)."""
    if "://" in url or url.startswith(("file:", "urn:", "mailto:")):
        return url
    path = Path(url)
    return path.as_uri() if path.is_absolute() else url


def entry_id(version_id: str) -> str:
    """The Atom id of a change: a urn:uuid derived from its version id (stable across rewrites)."""
    return f"urn:uuid:{uuid.uuid5(_NS, 'version:' + version_id)}"


def feed_id(name: str) -> str:
    """The Atom id of a feed named by ``name`` (e.g. the data directory and the selection)."""
    return f"urn:uuid:{uuid.uuid5(_NS, 'feed:' + name)}"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    from kb.export.render_docx import xml_safe

    el = ET.SubElement(parent, f"{{{ATOM}}}{tag}", {k: xml_safe(v) for k, v in attrs.items()})
    if text is not None:
        el.text = xml_safe(text)
    return el


def _content(c: Change) -> str:
    head = [c.summary(), f"Publisher: {c.publisher or 'unknown'} · source {c.source} · {c.doctype} · {c.language}",
            f"Published: {c.published or 'not stated'} · retrieved {c.retrieved} · version {c.version_id}"]
    if c.excerpt:
        head += ["", c.excerpt]
    lines = diff_lines(c)
    return "\n".join(head + ([""] + lines if lines else [])) + "\n"


def render_atom(changes: ChangeList, self_url: str, feed_name: str = "", title: str = "What changed") -> bytes:
    """The changes as an Atom 1.0 feed (UTF-8 XML): one entry per change, texts escaped by ElementTree.

    ``self_url`` is where the feed lives (its ``link rel="self"``); ``feed_name`` (default: that URL)
    names its stable id.
    """
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    scope = [f"since {changes.since}" if changes.since else "", f"source {changes.source}" if changes.source else ""]
    _sub(feed, "id", feed_id(feed_name or self_url))
    _sub(feed, "title", title + "".join(f" · {s}" for s in scope if s))
    _sub(feed, "subtitle", "New documents and new versions of indexed documents, newest first, with their "
                           "paragraph changes")
    newest = max((c.retrieved for c in changes.changes), default="")
    _sub(feed, "updated", _rfc3339(newest) or _rfc3339(changes.generated) or now_iso())
    _sub(feed, "link", rel="self", type=MEDIA_TYPES["atom"], href=self_url)
    author = _sub(feed, "author")
    _sub(author, "name", "knowledge base ingester")
    _sub(feed, "generator", "kb changes")
    for c in changes.changes:
        e = _sub(feed, "entry")
        _sub(e, "id", entry_id(c.version_id))
        label = "New document" if c.is_new_document else "New version"
        _sub(e, "title", f"{label}: {c.title or c.url}", type="text")
        if c.url:
            _sub(e, "link", rel="alternate", href=_href(c.url))
        updated = _rfc3339(c.retrieved, c.valid_from) or iso_of_epoch(c.valid_from)
        _sub(e, "updated", updated)
        published = _rfc3339(c.published)
        if published:
            _sub(e, "published", published)
        for term in (c.source, c.doctype):
            if term:
                _sub(e, "category", term=term)
        _sub(e, "summary", c.summary(), type="text")
        _sub(e, "content", _content(c), type="text")
    ET.indent(feed)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True) + b"\n"


def render(changes: ChangeList, fmt: str, self_url: str = "") -> bytes:
    """The bytes of ``changes`` in ``fmt`` (md, json or atom)."""
    if fmt == "md":
        return render_markdown(changes)
    if fmt == "json":
        return (json.dumps(render_json(changes), ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    if fmt == "atom":
        return render_atom(changes, self_url)
    raise UsageError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def feed_path(data_dir: Path) -> Path:
    """Where the ingester keeps the feed: ``<data>/changes.atom``."""
    return Path(data_dir) / FEED_NAME


def write_feed(registry: Registry, data_dir: Path, limit: int = FEED_LIMIT) -> Path:
    """Rewrite ``<data>/changes.atom`` atomically with the ``limit`` newest changes; returns its path."""
    from kb.export import write_atomically

    path = feed_path(data_dir)
    url = path.resolve().as_uri()
    data = render_atom(list_changes(registry, limit=limit), self_url=url, feed_name=str(path.resolve()))
    return write_atomically(path, data, label="the changes feed")
