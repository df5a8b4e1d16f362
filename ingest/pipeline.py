"""run_ingest: every source of sources.yaml through fetch, extract, language, dedup, chunk, embed, store.

Failures of one item are recorded and the run goes on. Each document version is written to the
registry as ``pending`` (with its chunks) before its vectors go to the store, and marked ``indexed``
last, so a killed run is completed by the next one with the same ids and no duplicates.
"""
from __future__ import annotations

import hashlib
import logging
import re
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from tqdm import tqdm

from ingest import dedup
from ingest import lock as locks
from ingest.chunking import chunk_text
from ingest.context import contextual_texts
from ingest.discover import discover_feed, discover_sitemap, list_folder
from ingest.fetch import FetchError, FetchResult, fetch_url, read_file
from ingest.lock import HeldLock, LockLost, run_lock
from ingest.sources import Source
from kb.changes import feed_path, write_feed
from kb.errors import EmbedderUnavailable, SnapshotError, StoreUnavailable
from kb.evidence.extract import ExtractError, Page, extract_document
from kb.registry import Registry, VersionRow, open_registry
from kb.registry.database import DocumentRecord, NewChunk, NewVersion
from kb.registry.ids import doc_id_for, text_sha, version_id_for
from kb.settings import Settings
from kb.text.language import detect_language
from kb.times import FOREVER, date_ts, epoch_of_iso, now_iso, utcnow
from kb.vectors.embedding import make_embedder
from kb.vectors.protocols import Embedder
from kb.vectors.store import Store, open_store

log = logging.getLogger(__name__)
MIN_TEXT_CHARS = 40
WORKERS = 4


# -- report -----------------------------------------------------------------------------------
@dataclass
class SourceReport:
    """Counts and errors of one source in one run."""

    name: str
    status: str = "ok"
    documents_new: int = 0
    documents_updated: int = 0
    documents_unchanged: int = 0
    duplicates: int = 0
    failed: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)
    chunks_embedded: int = 0

    def fail(self, item: str, error: str) -> None:
        self.failed += 1
        self.errors.append({"item": item, "error": error})

    def finish(self) -> None:
        good = self.documents_new + self.documents_updated + self.documents_unchanged + self.duplicates
        self.status = "ok" if not self.failed else ("partial" if good else "failed")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("chunks_embedded")
        return d


@dataclass
class IngestReport:
    """The result of one run (``ingest run --json``)."""

    run_id: str
    started: str
    finished: str = ""
    sources: list[SourceReport] = field(default_factory=list)
    removed_sources: list[str] = field(default_factory=list)
    recovered_versions: int = 0
    warnings: list[str] = field(default_factory=list)   # problems that did not fail the run

    @property
    def chunks_embedded(self) -> int:
        return sum(s.chunks_embedded for s in self.sources)

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.sources)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def totals(self) -> dict[str, int]:
        keys = ("documents_new", "documents_updated", "documents_unchanged", "duplicates")
        t = {k: sum(getattr(s, k) for s in self.sources) for k in keys}
        t["chunks_embedded"] = self.chunks_embedded
        t["failed"] = self.failed
        return t

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "started": self.started, "finished": self.finished,
                "totals": self.totals(), "sources": [s.to_json() for s in self.sources],
                "removed_sources": self.removed_sources, "warnings": self.warnings}


# -- metadata ---------------------------------------------------------------------------------
def _iso_date(value: str) -> str:
    """A date as YYYY-MM-DD when one can be read from ``value`` ("Effective January 2, 2025" included)."""
    if not value:
        return ""
    m = re.search(r"\b(\d{4})-(\d{2})-(\d{2})\b", value)
    if m:
        return m.group(0)
    try:
        import dateparser.search

        found = dateparser.search.search_dates(value, languages=["en"], settings={"PREFER_DAY_OF_MONTH": "first"})
    except Exception:  # noqa: BLE001 - dateparser is best effort
        found = None
    return found[0][1].date().isoformat() if found else ""


# -- work items -------------------------------------------------------------------------------
@dataclass
class Item:
    """One page or file to ingest."""

    source: Source
    location: str      # URL or absolute path
    is_file: bool


@dataclass
class Prepared:
    """A fetched and extracted document, ready to be committed in the main thread."""

    item: Item
    doc_id: str
    result: FetchResult | None
    page: Page | None
    snapshot_sha: str = ""
    not_modified: bool = False


def discover(source: Source, settings: Settings) -> list[Item]:
    """The items of a source (raises FetchError when a feed, sitemap or folder cannot be read)."""
    if source.kind == "path":
        p = Path(source.targets[0])
        if not p.exists():
            raise FetchError(str(p), f"{p} does not exist; fix 'path' of source {source.name!r} in "
                                     f"{source.file or 'the sources file'} or create it")
        files = list_folder(p, source.follow_symlinks) if p.is_dir() else [p]
        files = [f for f in files if not any(fnmatch(f.name, pat) for pat in source.exclude)]
        return [Item(source, str(f.resolve()), True) for f in files]
    if source.kind == "feed":
        urls = discover_feed(source.targets[0], settings)
    elif source.kind == "sitemap":
        urls = discover_sitemap(source.targets[0], settings)
    else:
        urls = list(source.targets)
    return [Item(source, u, False) for u in urls]


def prepare(item: Item, registry: Registry, settings: Settings) -> Prepared:
    """Fetch (conditionally), snapshot and extract one item; raises FetchError/ExtractError."""
    doc_id = doc_id_for(item.location)
    doc = registry.document(doc_id)
    if item.is_file:
        result = read_file(Path(item.location), settings)
    else:
        result = fetch_url(item.location, settings, etag=(doc or {}).get("etag"),
                           last_modified=(doc or {}).get("last_modified"))
    if result.not_modified:
        return Prepared(item, doc_id, result, None, not_modified=True)
    sha = hashlib.sha256(result.content).hexdigest()
    latest = registry.latest_version(doc_id)
    if latest and latest.snapshot_sha == sha and latest.status == "indexed":
        if not registry.snapshot_intact(sha):  # the same bytes again: they restore a damaged snapshot
            log.warning("snapshot %s of %s failed its hash; restored from the bytes fetched now", sha[:12], item.location)
            registry.save_snapshot(result.content, result.final_url or result.url, result.retrieved, result.content_type)
        return Prepared(item, doc_id, result, None, snapshot_sha=sha, not_modified=True)
    page = extract_document(result, item.location if item.is_file else None)
    if len(page.text.strip()) < MIN_TEXT_CHARS:
        raise ExtractError(f"no main text could be extracted from {item.location} "
                           f"({len(page.text.strip())} characters); check that it is an article or document page")
    # Only what extracted into a document is kept as evidence: a failed item leaves no raw bytes behind.
    registry.save_snapshot(result.content, result.final_url or result.url, result.retrieved, result.content_type)
    return Prepared(item, doc_id, result, page, snapshot_sha=sha)


# -- describing a page -----------------------------------------------------------------------
@dataclass
class PageDescription:
    """What the registry is told about one changed page: the document row, the new version, its chunks."""

    document: DocumentRecord
    version: NewVersion
    chunks: list[NewChunk]


def same_site(a: str, b: str) -> bool:
    """Whether two URLs are on one registrable domain (``news.example.co.uk`` and ``example.co.uk``); hosts
    without a public suffix (an IP address, ``localhost``) must be equal, port included."""
    from tld import get_fld

    ha, hb = urlsplit(a).netloc.lower(), urlsplit(b).netloc.lower()
    if not ha or not hb:
        return False
    fa, fb = get_fld(a, fail_silently=True), get_fld(b, fail_silently=True)
    if fa and fb:
        return bool(fa == fb)
    return ha == hb


def identity_url(claimed: str, fetched: str, is_file: bool, owner: str | None, source: str) -> str:
    """The URL a document is stored and cited under.

    A page's canonical URL (or ``og:url``) becomes its identity only on the site it was fetched from
    (after redirects), and never when another source already owns that URL; otherwise the fetched URL
    stays the identity (the claim is kept as metadata). A local file's front-matter URL is the user's
    own statement and is accepted, unless another source owns it."""
    if not claimed:
        return fetched
    if owner is not None and owner != source:
        return fetched
    if is_file or same_site(claimed, fetched):
        return claimed
    return fetched


def describe_page(p: Prepared, latest: VersionRow | None, match: dedup.Match | None, exact_key: str,
                  signature: bytes | None, checked: str, version_exists: Callable[[str], bool],
                  url_owner: Callable[[str], str | None] = lambda _url: None) -> PageDescription:
    """The document, version and chunks for a prepared page whose text changed (pure: no I/O but the
    ``version_exists`` question). Language: the source's, else detected, else declared by the page;
    identity URL: the page's canonical, else the fetched one (or the file's ``file://`` URI);
    doctype: the page's own when it names one we know, else the source's; a copy gets no chunks."""
    src, page, result = p.item.source, p.page, p.result
    assert page is not None and result is not None
    text = page.text
    sha = text_sha(text)
    language = src.language if src.language != "auto" else detect_language(text)
    if language == "und" and page.language:
        language = page.language
    fetched = result.final_url if not p.item.is_file else Path(p.item.location).resolve().as_uri()
    url = identity_url(page.url, fetched, p.item.is_file, url_owner(page.url) if page.url else None, src.name)
    valid_from = int(epoch_of_iso(result.retrieved) or 0)
    if latest and valid_from <= latest.valid_from:
        valid_from = latest.valid_from + 1
    version_id = version_id_for(p.doc_id, sha)
    if version_exists(version_id):  # the text went back to an earlier version
        version_id = version_id_for(p.doc_id, sha, valid_from)
    doctype = page.doctype if page.doctype in ("news", "tos", "court", "blog", "summary") else src.doctype
    publisher = src.publisher or page.sitename or urlsplit(url).hostname or ""
    title = page.title or src.title or url
    published = _iso_date(page.date)
    chunks = [] if match else [NewChunk(c.seq, c.start, c.end, detect_language(c.text), c.text)
                               for c in chunk_text(text)]
    meta = {"exact_key": exact_key, "declared_language": page.language, "author": page.author,
            **({"claimed_url": page.url} if page.url and page.url != url else {}),
            **{k: v for k, v in (page.meta or {}).items() if isinstance(v, (str, int, float, list))}}
    document = DocumentRecord(
        doc_id=p.doc_id, source=src.name, url=url, location=p.item.location, title=title, publisher=publisher,
        author=page.author, doctype=doctype, language=language, published=published, checked=checked,
        duplicate_of=match.doc_id if match else None, duplicate_kind=match.kind if match else None,
        duplicate_score=match.score if match else None, etag=result.etag, last_modified=result.last_modified)
    version = NewVersion(
        version_id=version_id, doc_id=p.doc_id, text=text, text_sha=sha, snapshot_sha=p.snapshot_sha,
        retrieved=result.retrieved, valid_from=valid_from, title=title, language=language, published=published,
        effective_date=page.date, meta=meta, signature=signature)
    return PageDescription(document, version, chunks)


def classify(latest: VersionRow | None, doc: dict[str, Any] | None, match: dedup.Match | None) -> str:
    """How a changed page counts in the run report: ``duplicate`` (a copy of another document), ``new``
    (first version, or a former copy now standing alone) or ``updated``."""
    if match:
        return "duplicate"
    if latest is None or (doc or {}).get("duplicate_of"):
        return "new"
    return "updated"


# -- the run ----------------------------------------------------------------------------------
class Ingestor:
    """Holds the registry, store, embedder and duplicate index for one run."""

    def __init__(self, settings: Settings, progress: bool = True,
                 on_chunks: Callable[[int], None] | None = None) -> None:
        self.settings = settings
        self.progress = progress
        self.registry = open_registry(settings)
        self.embedder: Embedder = make_embedder(settings)
        self.store: Store = open_store(settings, self.embedder.model_id, self.embedder.dim)
        self.chunk_context = self.store.check_chunk_context(settings.chunk_context)
        self.dups = self._load_duplicate_index()
        self.on_chunks = on_chunks
        self.lock = HeldLock()        # the run's lock (run_ingest sets it); checked between documents
        self._lock_checked = time.monotonic()

    def check_lock(self, before: str) -> None:
        """Stop (``LockLost``) when the run's PostgreSQL lock went with its session and another ingest took it.

        Checked at most every ``RUN_LOCK_CHECK_SECONDS``, before a document is written: what was written
        stays, a version left pending is finished by the next run. A lost lock nobody took is taken again."""
        now = time.monotonic()
        if now - self._lock_checked < locks.RUN_LOCK_CHECK_SECONDS:
            return
        self._lock_checked = now
        state = self.lock.check()
        if state == "retaken":
            log.warning("the ingest lock's PostgreSQL session ended; took the lock again and went on")
        elif state == "lost":
            raise LockLost(f"this ingest lost its lock on the registry {self.lock.where} (its PostgreSQL session "
                           f"ended) and another ingest (pid {self.lock.holder()}) took it: stopped before {before}. "
                           "What was indexed stays; the other run or the next one finishes the rest")

    def _load_duplicate_index(self) -> dedup.DuplicateIndex:
        index = dedup.DuplicateIndex()
        for doc_id, key, signature in self.registry.current_signatures():
            index.add(doc_id, key, dedup.signature_from_bytes(signature))
        return index

    # -- recovery ---------------------------------------------------------------------------
    def finish_pending(self) -> int:
        """Complete versions that a killed run left ``pending``."""
        pending = self.registry.pending_version_ids()
        for version_id in pending:
            v = self.registry.version(version_id)
            if v:
                self._index_version(v, self.registry.document(v.doc_id) or {})
        return len(pending)

    def _index_version(self, v: VersionRow, doc: dict[str, Any]) -> int:
        """Embed and store a pending version's chunks, retire the previous version, mark it indexed.

        Returns how many chunk vectors were written (vectors come from the cache when the same text was
        embedded before)."""
        chunks = self.registry.chunks(v.version_id)
        have = self.store.existing_ids([c.chunk_id for c in chunks])
        todo = [c for c in chunks if c.chunk_id not in have]
        if todo:
            embedded = self._embedded_texts(v, doc, todo)
            vecs = self.embedder.embed_passages(embedded, progress=self.on_chunks)
            nodes = [self._node(c, vec, v, doc) for c, vec in zip(todo, vecs)]
            self.store.add_nodes(nodes)
        prev = [p for p in self.registry.versions(v.doc_id)
                if p.version_id != v.version_id and p.status == "indexed" and p.valid_to == FOREVER
                and p.valid_from < v.valid_from]
        for p in prev:
            self.store.update_metadata([c.chunk_id for c in self.registry.chunks(p.version_id)], {"valid_to": v.valid_from})
        self.registry.mark_indexed(v.version_id, retire=[(p.version_id, v.valid_from) for p in prev])
        return len(todo)

    def _embedded_texts(self, v: VersionRow, doc: dict[str, Any], chunks: Sequence[Any]) -> list[str]:
        """What to embed for these chunks of a version: each with its context (``KB_CHUNK_CONTEXT``)."""
        if self.chunk_context == "none":
            return [c.text for c in chunks]
        try:
            text = self.registry.version_text(v.version_id)
        except SnapshotError as exc:   # a damaged stored text: embed the chunks alone, `ingest verify` reports it
            log.warning("version %s: %s; embedding its chunks without their headings", v.version_id, exc)
            return [c.text for c in chunks]
        return contextual_texts(self.chunk_context, v.title or doc.get("title") or "", text,
                                [(c.start, c.end) for c in chunks])

    def _node(self, c: Any, vec: Any, v: VersionRow, doc: dict[str, Any]) -> TextNode:
        meta = {
            "doc_id": v.doc_id, "version_id": v.version_id, "source": doc.get("source") or "",
            "url": doc.get("url") or "", "title": v.title or doc.get("title") or "",
            "publisher": doc.get("publisher") or "", "doctype": doc.get("doctype") or "other",
            "language": c.language, "doc_language": v.language, "published": v.published or "",
            "published_ts": date_ts(v.published), "retrieved": v.retrieved, "valid_from": v.valid_from,
            "valid_to": v.valid_to, "start": c.start, "end": c.end, "seq": c.seq,
        }
        node = TextNode(id_=c.chunk_id, text=c.text, embedding=[float(x) for x in vec], metadata=meta,
                        start_char_idx=c.start, end_char_idx=c.end)
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=v.doc_id)
        return node

    # -- commit one document ----------------------------------------------------------------
    def commit(self, p: Prepared, rep: SourceReport) -> None:
        """Register a prepared document: unchanged, duplicate, new or updated version."""
        now = now_iso()
        doc = self.registry.document(p.doc_id)
        if p.not_modified:
            self._touch(p, now)
            rep.documents_unchanged += 1
            return
        assert p.page is not None and p.result is not None
        text = p.page.text
        latest = self.registry.latest_version(p.doc_id)
        if latest and latest.text_sha == text_sha(text):
            if latest.status == "pending":
                rep.chunks_embedded += self._index_version(latest, doc or {})
            self._touch(p, now)
            rep.documents_unchanged += 1
            return
        key, sig = dedup.exact_key(text), dedup.signature(text)
        match = self.dups.find(p.doc_id, key, sig)
        desc = describe_page(p, latest, match, key, dedup.signature_bytes(sig), now,
                             version_exists=lambda vid: self.registry.version(vid) is not None,
                             url_owner=self.registry.url_owner)
        with self.registry.transaction():
            self.registry.upsert_document(desc.document)
            self.registry.add_version(desc.version, desc.chunks)
        v = self.registry.version(desc.version.version_id)
        assert v is not None
        rep.chunks_embedded += self._index_version(v, self.registry.document(p.doc_id) or {})
        outcome = classify(latest, doc, match)
        if outcome == "duplicate":
            rep.duplicates += 1
            return
        self.dups.add(p.doc_id, key, sig)
        if outcome == "new":
            rep.documents_new += 1
        else:
            rep.documents_updated += 1

    def _touch(self, p: Prepared, now: str) -> None:
        etag = p.result.etag if p.result else None
        lm = p.result.last_modified if p.result else None
        self.registry.touch_document(p.doc_id, now, etag, lm)

    # -- sources ----------------------------------------------------------------------------
    def run_source(self, source: Source, pool: ThreadPoolExecutor) -> SourceReport:
        rep = SourceReport(source.name)
        try:
            items = discover(source, self.settings)
        except (FetchError, ExtractError) as exc:
            rep.fail(getattr(exc, "item", None) or source.targets[0], str(exc))
            rep.finish()
            return rep
        if not items:
            rep.fail(source.targets[0], "no documents found; check the URL, feed, sitemap or folder")
        bar = tqdm(total=len(items), desc=source.name[:28], unit="doc", file=sys.stderr,
                   disable=not self.progress, leave=False)
        futures = [pool.submit(prepare, it, self.registry, self.settings) for it in items]
        for it, fut in zip(items, futures):
            try:
                self.check_lock(it.location)
            except BaseException:   # lost to another run, or the registry is unreachable: stop the source here
                for f in futures:
                    f.cancel()
                bar.close()
                raise
            try:
                self.commit(fut.result(), rep)
            except (FetchError, ExtractError) as exc:
                rep.fail(it.location, str(exc))
            except (StoreUnavailable, OSError) as exc:
                for f in futures:
                    f.cancel()
                bar.close()
                raise StoreUnavailable(f"stopped while writing {it.location}: {exc}") from exc
            except EmbedderUnavailable:   # the embeddings server went away: stop, the version stays pending
                for f in futures:
                    f.cancel()
                bar.close()
                raise
            except Exception as exc:
                log.exception("unexpected failure on %s", it.location)
                rep.fail(it.location, f"unexpected {type(exc).__name__}: {exc}; please report this as a bug")
            bar.update(1)
            bar.set_postfix(chunks=rep.chunks_embedded)
        bar.close()
        rep.finish()
        return rep

    def record_source(self, source: Source, rep: SourceReport, now: str) -> None:
        last_error = rep.errors[-1]["error"] if rep.errors else None
        self.registry.record_source(source.name, source.config, now, rep.status == "failed", last_error)


def run_ingest(settings: Settings, sources: Sequence[Source], only: Sequence[str] | None = None,
               progress: bool = True, sources_file: str = "", wait_for_lock: bool = False) -> IngestReport:
    """Ingest the sources (all, or those named in ``only``) and return the run report."""
    with run_lock(settings, wait=wait_for_lock) as held:
        ing = Ingestor(settings, progress=progress)
        ing.lock = held
        report = IngestReport(run_id=f"{utcnow().strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}",
                              started=now_iso())
        ing.registry.start_run(report.run_id, report.started, sources_file)
        try:
            report.recovered_versions = ing.finish_pending()
            chosen = [s for s in sources if not only or s.name in only]
            with ThreadPoolExecutor(max_workers=WORKERS) as pool:
                for src in chosen:
                    rep = ing.run_source(src, pool)
                    report.sources.append(rep)
                    ing.record_source(src, rep, now_iso())
            known = {s.name for s in sources}
            report.removed_sources = [r["name"] for r in ing.registry.sources() if r["name"] not in known]
            ing.registry.mark_sources_removed(report.removed_sources, now_iso())
        except BaseException as exc:  # a full disk, an unreachable store, kill: leave the run marked
            try:
                ing.registry.finish_run(report.run_id, now_iso(), "failed", {"error": str(exc) or type(exc).__name__})
            except Exception:  # noqa: BLE001 - the registry itself may be what failed
                log.warning("could not record the failed run %s", report.run_id)
            raise
        report.finished = now_iso()
        write_changes_feed(ing.registry, settings, report)   # last, but before the report is recorded
        ing.registry.finish_run(report.run_id, report.finished, "partial" if report.failed else "ok", report.to_json())
        return report


def write_changes_feed(registry: Registry, settings: Settings, report: IngestReport) -> None:
    """Rewrite ``<data>/changes.atom`` (``kb.changes.write_feed``); a failure is a warning, never a failed run."""
    try:
        write_feed(registry, settings.data_dir)
    except Exception as exc:  # noqa: BLE001 - the feed is a by-product: the index itself is complete
        message = f"could not write the changes feed {feed_path(settings.data_dir)}: {exc}"
        log.warning(message)
        report.warnings.append(message)
