"""Read-only listings over the registry for the UI: filter values, documents, versions, source health.

Plain functions over ``kb.registry.Registry`` (no Streamlit, no store): the sidebar filters, the
sources page and the citation cards' provenance lines are built from these.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from kb.registry import Registry, VersionRow
from kb.times import FOREVER, day_of, day_of_epoch


@dataclass
class FilterOptions:
    """The values the sidebar filters can take, from what is indexed."""

    languages: list[str] = field(default_factory=list)
    doctypes: list[str] = field(default_factory=list)
    publishers: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    first_published: date | None = None
    last_published: date | None = None
    first_retrieved: date | None = None
    version_dates: list[date] = field(default_factory=list)


@dataclass
class DocumentEntry:
    """A canonical document, its versions and the duplicates folded under it."""

    doc_id: str
    title: str
    url: str
    publisher: str
    doctype: str
    language: str
    source: str
    published: str
    versions: int
    indexed_versions: int
    current_version: str | None
    last_retrieved: str
    chunks: int
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    same_url: list[str] = field(default_factory=list)  # other documents at this URL (versions to retrieval)


@dataclass
class SourceHealth:
    """One source: how many documents, its last run and the errors of that run."""

    name: str
    documents: int
    last_run: str | None
    last_success: str | None
    consecutive_failures: int
    last_error: str | None
    removed: bool
    run_id: str | None = None
    status: str | None = None
    errors: list[dict[str, str]] = field(default_factory=list)
    doctype: str = ""            # from the source's entry in the sources file ("" when it names none)
    kind: str = ""               # url | urls | feed | sitemap | path

    @property
    def failing(self) -> bool:
        """Its last run failed (and it is still a source)."""
        return not self.removed and (self.status == "failed" or self.consecutive_failures > 0)


@dataclass
class Overview:
    """What the landing page says is indexed, and what is missing because sources failed."""

    documents: int = 0
    by_doctype: list[tuple[str, int]] = field(default_factory=list)
    by_language: list[tuple[str, int]] = field(default_factory=list)
    by_publisher: list[tuple[str, int]] = field(default_factory=list)
    newest_retrieval: str = ""
    sources: int = 0
    failed: list[SourceHealth] = field(default_factory=list)

    @property
    def failed_by_doctype(self) -> list[tuple[str, int]]:
        """How many failing sources of each document type (most first)."""
        return _ranked(h.doctype or "unspecified" for h in self.failed)


def index_counts(registry: Registry) -> dict[str, int]:
    """Indexed (current) chunks, canonical documents, all versions and duplicates."""
    return registry.index_counts()


def filter_options(registry: Registry) -> FilterOptions:
    """Distinct filter values over the indexed versions (all versions, so ``as of`` can reach old ones)."""
    values = registry.indexed_values()
    opts = FilterOptions(
        languages=sorted(values["languages"] - {"und", ""}),
        doctypes=sorted(v for v in values["doctypes"] if v),
        publishers=sorted((v for v in values["publishers"] if v), key=str.casefold),
        sources=sorted(v for v in values["sources"] if v),
    )
    published = sorted(d for d in (day_of(v) for v in values["published"]) if d)
    if published:
        opts.first_published, opts.last_published = published[0], published[-1]
    starts = sorted({day_of_epoch(v) for v in values["valid_from"]})
    opts.version_dates = starts
    opts.first_retrieved = starts[0] if starts else None
    return opts


def _ranked(values: Any) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].casefold()))


def overview(registry: Registry) -> Overview:
    """Canonical documents with passages by type, language and publisher; the newest retrieval; failing sources."""
    docs = [d for d in list_documents(registry) if d.chunks > 0]
    health = [h for h in source_health(registry) if not h.removed]
    return Overview(documents=len(docs), by_doctype=_ranked(d.doctype for d in docs),
                    by_language=_ranked(d.language for d in docs),
                    by_publisher=_ranked(d.publisher or "unknown publisher" for d in docs),
                    newest_retrieval=max((d.last_retrieved for d in docs), default=""),
                    sources=len(health), failed=[h for h in health if h.failing])


def list_documents(registry: Registry) -> list[DocumentEntry]:
    """Canonical documents with version counts and their duplicates, by source then title."""
    vers: dict[str, dict[str, Any]] = {}
    vers.update(registry.version_stats())
    docs = registry.documents()
    by_id: dict[str, DocumentEntry] = {}
    dups: list[dict[str, Any]] = []
    for d in docs:
        if d["duplicate_of"]:
            dups.append(d)
            continue
        v = vers.get(d["doc_id"], {})
        by_id[d["doc_id"]] = DocumentEntry(
            doc_id=d["doc_id"], title=d["title"] or "", url=d["url"] or "", publisher=d["publisher"] or "",
            doctype=d["doctype"] or "other", language=d["language"] or "und", source=d["source"],
            published=d["published"] or "", versions=int(v.get("n") or 0), indexed_versions=int(v.get("n_indexed") or 0),
            current_version=v.get("current"), last_retrieved=v.get("last") or "", chunks=int(v.get("chunks") or 0))
    for d in dups:
        entry = {"doc_id": d["doc_id"], "title": d["title"] or "", "url": d["url"] or "",
                 "publisher": d["publisher"] or "", "source": d["source"], "language": d["language"] or "und",
                 "kind": d["duplicate_kind"] or "", "score": d["duplicate_score"]}
        canonical = by_id.get(d["duplicate_of"])
        if canonical is not None:
            canonical.duplicates.append(entry)
    by_url: dict[str, list[str]] = {}
    for e in by_id.values():
        if e.url:
            by_url.setdefault(e.url.rstrip("/"), []).append(e.doc_id)
    for e in by_id.values():
        e.same_url = [d for d in by_url.get(e.url.rstrip("/"), []) if d != e.doc_id]
    return sorted(by_id.values(), key=lambda e: (e.source, (e.title or e.url).casefold()))


def publisher_filter(selected: list[str]) -> str | None:
    """A ``Filters.publisher`` value for exact publisher names.

    ``Filters.publisher`` is comma-separated and matches substrings, so a name such as
    "U.S. District Court, N.D. Cal. (Judge …)" is reduced to its longest comma-free piece, which
    still matches it and fewer others than its first piece would.
    """
    pieces = [max((p.strip() for p in name.split(",")), key=len) for name in selected if name.strip()]
    return ",".join(dict.fromkeys(p for p in pieces if p)) or None


def document_versions(registry: Registry, doc_id: str) -> list[VersionRow]:
    """Every version of a document, newest first."""
    return list(reversed(registry.versions(doc_id)))


def version_provenance(registry: Registry, version_id: str) -> dict[str, Any]:
    """Snapshot hash, retrieval time and validity of a version (empty when unknown)."""
    v = registry.version(version_id)
    if v is None:
        return {}
    snap = registry.snapshot(v.snapshot_sha) if v.snapshot_sha else None
    return {"version_id": v.version_id, "snapshot_sha": v.snapshot_sha or "", "text_sha": v.text_sha,
            "retrieved": v.retrieved, "valid_from": v.valid_from, "valid_to": v.valid_to,
            "current": v.valid_to == FOREVER, "snapshot_url": (snap or {}).get("url", ""),
            "content_type": (snap or {}).get("content_type", ""),
            "summary_of": [u for u in (v.meta or {}).get("summary_of", []) if isinstance(u, str)]}


#: The keys that say what kind of source an entry is (one per entry; see ``ingest/sources.py``).
SOURCE_KINDS = ("url", "urls", "feed", "sitemap", "path")


def source_health(registry: Registry) -> list[SourceHealth]:
    """Every known source with its last run and that run's errors for it."""
    counts = registry.canonical_counts_by_source()
    out: dict[str, SourceHealth] = {}
    for s in registry.sources():
        try:
            config = json.loads(s.get("config") or "{}")
        except json.JSONDecodeError:
            config = {}
        config = config if isinstance(config, dict) else {}
        out[s["name"]] = SourceHealth(
            name=s["name"], documents=counts.get(s["name"], 0), last_run=s["last_run"],
            last_success=s["last_success"], consecutive_failures=int(s["consecutive_failures"] or 0),
            last_error=s["last_error"], removed=bool(s["removed_at"]), doctype=str(config.get("doctype") or ""),
            kind=next((k for k in SOURCE_KINDS if k in config), ""))
    for name, n in counts.items():  # documents of a source the registry has no row for
        out.setdefault(name, SourceHealth(name, n, None, None, 0, None, False))
    for run in registry.runs(limit=50):  # newest first: the first report naming a source wins
        try:
            report = json.loads(run["report"] or "{}")
        except json.JSONDecodeError:
            continue
        for rep in report.get("sources", []):
            h = out.get(rep.get("name"))
            if h is not None and h.run_id is None:
                h.run_id, h.status = run["run_id"], rep.get("status")
                h.errors = [{"item": str(e.get("item", "")), "error": str(e.get("error", ""))}
                            for e in rep.get("errors", [])]
    return sorted(out.values(), key=lambda h: h.name)


def recent_runs(registry: Registry, limit: int = 10) -> list[dict[str, Any]]:
    """The last ingest runs with their totals."""
    out = []
    for run in registry.runs(limit=limit):
        try:
            totals = json.loads(run["report"] or "{}").get("totals", {})
        except json.JSONDecodeError:
            totals = {}
        out.append({"run_id": run["run_id"], "started": run["started"], "finished": run["finished"],
                    "status": run["status"], **totals})
    return out
