"""run_ingest: every source of sources.yaml through fetch, extract, language, dedup, chunk, embed, store.

Failures of one item are recorded and the run goes on. Each document version is written to the
registry as ``pending`` (with its chunks) before its vectors go to the store, and marked ``indexed``
last, so a killed run is completed by the next one with the same ids and no duplicates.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
import uuid
from fnmatch import fnmatch
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit, urlunsplit, parse_qsl, urlencode

from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from tqdm import tqdm

from ingest import dedup
from ingest.chunking import chunk_text
from ingest.discover import discover_feed, discover_sitemap, list_folder
from ingest.extract import ExtractError, Page, extract_document
from ingest.fetch import FetchError, FetchResult, fetch_url, read_file
from ingest.lock import run_lock
from ingest.sources import Source
from kb.embedding import KBEmbedding, make_embedder
from kb.errors import StoreUnavailable
from kb.language import detect_language
from kb.registry import Registry, VersionRow, iso, utcnow
from kb.settings import FOREVER, Settings
from kb.store import Store, open_store

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
                "removed_sources": self.removed_sources}


# -- identities -------------------------------------------------------------------------------
_TRACKING = re.compile(r"^(utm_|fbclid$|gclid$|mc_|ref$|ref_src$)")


def canonical_url(url: str) -> str:
    """Lower-case scheme and host, no fragment, no tracking parameters, no trailing slash."""
    parts = urlsplit(url.strip())
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k)])
    path = parts.path.rstrip("/") or "/"
    host = (parts.hostname or "").lower()
    if parts.port and not ((parts.scheme == "http" and parts.port == 80) or (parts.scheme == "https" and parts.port == 443)):
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme.lower(), host, path, query, ""))


def doc_id_for(location: str) -> str:
    """Deterministic document id from a canonical URL or an absolute path."""
    key = canonical_url(location) if re.match(r"^https?://", location) else str(Path(location).resolve())
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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
    except Exception:  # dateparser is best effort
        found = None
    return found[0][1].date().isoformat() if found else ""


def _epoch(date: str) -> int:
    try:
        return int(datetime.fromisoformat(date).replace(tzinfo=timezone.utc).timestamp()) if date else 0
    except ValueError:
        return 0


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
            raise FetchError(str(p), f"{p} does not exist; fix 'path' of source {source.name!r} in sources.yaml")
        files = list_folder(p) if p.is_dir() else [p]
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
    sha = registry.save_snapshot(result.content, result.final_url or result.url, result.retrieved, result.content_type)
    latest = registry.latest_version(doc_id)
    if latest and latest.snapshot_sha == sha and latest.status == "indexed":
        return Prepared(item, doc_id, result, None, snapshot_sha=sha, not_modified=True)
    page = extract_document(result, item.location if item.is_file else None)
    if len(page.text.strip()) < MIN_TEXT_CHARS:
        raise ExtractError(f"no main text could be extracted from {item.location} "
                           f"({len(page.text.strip())} characters); check that it is an article or document page")
    return Prepared(item, doc_id, result, page, snapshot_sha=sha)


# -- the run ----------------------------------------------------------------------------------
class Ingestor:
    """Holds the registry, store, embedder and duplicate index for one run."""

    def __init__(self, settings: Settings, progress: bool = True,
                 on_chunks: Callable[[int], None] | None = None) -> None:
        self.settings = settings
        self.progress = progress
        self.registry = Registry(settings.registry_path)
        self.embedder: KBEmbedding = make_embedder(settings)
        self.store: Store = open_store(settings, self.embedder.model_id, self.embedder.dim)
        self.dups = self._load_duplicate_index()
        self.on_chunks = on_chunks

    def _load_duplicate_index(self) -> dedup.DuplicateIndex:
        index = dedup.DuplicateIndex()
        rows = self.registry.query(
            "SELECT d.doc_id, v.signature, v.meta FROM documents d JOIN versions v ON v.doc_id=d.doc_id "
            "WHERE d.duplicate_of IS NULL AND v.valid_to=? AND v.signature IS NOT NULL "
            "ORDER BY d.first_seen, d.doc_id", (FOREVER,))
        for r in rows:
            index.add(r["doc_id"], json.loads(r["meta"] or "{}").get("exact_key", ""),
                      dedup.signature_from_bytes(r["signature"]))
        return index

    # -- recovery ---------------------------------------------------------------------------
    def finish_pending(self) -> int:
        """Complete versions that a killed run left ``pending``."""
        rows = self.registry.query("SELECT version_id FROM versions WHERE status='pending' ORDER BY valid_from")
        for r in rows:
            v = self.registry.version(r["version_id"])
            if v:
                self._index_version(v, self.registry.document(v.doc_id) or {})
        return len(rows)

    def _index_version(self, v: VersionRow, doc: dict[str, Any]) -> int:
        """Embed and store a pending version's chunks, retire the previous version, mark it indexed.

        Returns how many chunk vectors were written (vectors come from the cache when the same text was
        embedded before)."""
        chunks = self.registry.chunks(v.version_id)
        have = self.store.existing_ids([c.chunk_id for c in chunks])
        todo = [c for c in chunks if c.chunk_id not in have]
        if todo:
            vecs = self.embedder.embed_passages([c.text for c in todo], progress=self.on_chunks)
            nodes = [self._node(c, vec, v, doc) for c, vec in zip(todo, vecs)]
            self.store.add_nodes(nodes)
        prev = [p for p in self.registry.versions(v.doc_id)
                if p.version_id != v.version_id and p.status == "indexed" and p.valid_to == FOREVER
                and p.valid_from < v.valid_from]
        for p in prev:
            self.store.update_metadata([c.chunk_id for c in self.registry.chunks(p.version_id)], {"valid_to": v.valid_from})
        with self.registry.transaction() as db:
            for p in prev:
                db.execute("UPDATE versions SET valid_to=? WHERE version_id=?", (v.valid_from, p.version_id))
            db.execute("UPDATE versions SET status='indexed' WHERE version_id=?", (v.version_id,))
            db.execute("INSERT INTO meta VALUES ('generation', '1') ON CONFLICT(key) DO UPDATE SET "
                       "value=CAST(value AS INTEGER)+1")
        return len(todo)

    def _node(self, c: Any, vec: Any, v: VersionRow, doc: dict[str, Any]) -> TextNode:
        meta = {
            "doc_id": v.doc_id, "version_id": v.version_id, "source": doc.get("source") or "",
            "url": doc.get("url") or "", "title": v.title or doc.get("title") or "",
            "publisher": doc.get("publisher") or "", "doctype": doc.get("doctype") or "other",
            "language": c.language, "doc_language": v.language, "published": v.published or "",
            "published_ts": _epoch(v.published), "retrieved": v.retrieved, "valid_from": v.valid_from,
            "valid_to": v.valid_to, "start": c.start, "end": c.end, "seq": c.seq,
        }
        node = TextNode(id_=c.chunk_id, text=c.text, embedding=[float(x) for x in vec], metadata=meta,
                        start_char_idx=c.start, end_char_idx=c.end)
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=v.doc_id)
        return node

    # -- commit one document ----------------------------------------------------------------
    def commit(self, p: Prepared, rep: SourceReport) -> None:
        """Register a prepared document: unchanged, duplicate, new or updated version."""
        src, now = p.item.source, iso(utcnow())
        doc = self.registry.document(p.doc_id)
        if p.not_modified:
            self._touch(p, now)
            rep.documents_unchanged += 1
            return
        page = p.page
        assert page is not None and p.result is not None
        text = page.text
        text_sha = _sha(text)
        latest = self.registry.latest_version(p.doc_id)
        if latest and latest.text_sha == text_sha:
            if latest.status == "pending":
                rep.chunks_embedded += self._index_version(latest, doc or {})
            self._touch(p, now)
            rep.documents_unchanged += 1
            return
        key, sig = dedup.exact_key(text), dedup.signature(text)
        match = self.dups.find(p.doc_id, key, sig)
        language = src.language if src.language != "auto" else detect_language(text)
        if language == "und" and page.language:
            language = page.language
        url = page.url or (p.result.final_url if not p.item.is_file else Path(p.item.location).resolve().as_uri())
        published = _iso_date(page.date)
        retrieved = p.result.retrieved
        valid_from = int(datetime.fromisoformat(retrieved.replace("Z", "+00:00")).timestamp())
        if latest and valid_from <= latest.valid_from:
            valid_from = latest.valid_from + 1
        version_id = hashlib.sha256(f"{p.doc_id}:{text_sha}".encode()).hexdigest()[:20]
        if self.registry.version(version_id):  # the text went back to an earlier version
            version_id = hashlib.sha256(f"{p.doc_id}:{text_sha}:{valid_from}".encode()).hexdigest()[:20]
        doctype = page.doctype if page.doctype in ("news", "tos", "court", "blog") else src.doctype
        publisher = src.publisher or page.sitename or urlsplit(url).hostname or ""
        title = page.title or src.title or url
        chunks = [] if match else chunk_text(text)
        meta = {"exact_key": key, "declared_language": page.language, "author": page.author,
                **{k: v for k, v in (page.meta or {}).items() if isinstance(v, (str, int, float, list))}}
        with self.registry.transaction() as db:
            if doc is None:
                db.execute(
                    "INSERT INTO documents (doc_id, source, url, location, title, publisher, author, doctype, language,"
                    " published, first_seen, last_checked, duplicate_of, duplicate_kind, duplicate_score, etag,"
                    " last_modified) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (p.doc_id, src.name, url, p.item.location, title, publisher, page.author, doctype, language,
                     published, now, now, match.doc_id if match else None, match.kind if match else None,
                     match.score if match else None, p.result.etag, p.result.last_modified))
            else:
                db.execute(
                    "UPDATE documents SET source=?, url=?, title=?, publisher=?, author=?, doctype=?, language=?,"
                    " published=?, last_checked=?, duplicate_of=?, duplicate_kind=?, duplicate_score=?, etag=?,"
                    " last_modified=? WHERE doc_id=?",
                    (src.name, url, title, publisher, page.author, doctype, language, published, now,
                     match.doc_id if match else None, match.kind if match else None,
                     match.score if match else None, p.result.etag, p.result.last_modified, p.doc_id))
            db.execute(
                "INSERT INTO versions (version_id, doc_id, text_sha, snapshot_sha, retrieved, valid_from, valid_to,"
                " title, language, published, effective_date, status, n_chunks, text, meta, signature)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (version_id, p.doc_id, text_sha, p.snapshot_sha, retrieved, valid_from, FOREVER, title, language,
                 published, page.date, "pending", len(chunks), text, json.dumps(meta, ensure_ascii=False),
                 dedup.signature_bytes(sig)))
            db.executemany(
                'INSERT INTO chunks (chunk_id, version_id, doc_id, seq, start, "end", language, text)'
                " VALUES (?,?,?,?,?,?,?,?)",
                [(f"{version_id}-{c.seq:04d}", version_id, p.doc_id, c.seq, c.start, c.end,
                  detect_language(c.text), c.text) for c in chunks])
        v = self.registry.version(version_id)
        assert v is not None
        rep.chunks_embedded += self._index_version(v, self.registry.document(p.doc_id) or {})
        if match:
            rep.duplicates += 1
            return
        self.dups.add(p.doc_id, key, sig)
        if latest is None or (doc or {}).get("duplicate_of"):
            rep.documents_new += 1
        else:
            rep.documents_updated += 1

    def _touch(self, p: Prepared, now: str) -> None:
        etag = p.result.etag if p.result else None
        lm = p.result.last_modified if p.result else None
        with self.registry.transaction() as db:
            db.execute("UPDATE documents SET last_checked=?, etag=COALESCE(?, etag), "
                       "last_modified=COALESCE(?, last_modified) WHERE doc_id=?", (now, etag, lm, p.doc_id))

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
                self.commit(fut.result(), rep)
            except (FetchError, ExtractError) as exc:
                rep.fail(it.location, str(exc))
            except (StoreUnavailable, OSError) as exc:
                for f in futures:
                    f.cancel()
                bar.close()
                raise StoreUnavailable(f"stopped while writing {it.location}: {exc}") from exc
            except Exception as exc:  # noqa: BLE001 - one broken item never aborts the run
                log.exception("unexpected failure on %s", it.location)
                rep.fail(it.location, f"unexpected {type(exc).__name__}: {exc}; please report this as a bug")
            bar.update(1)
            bar.set_postfix(chunks=rep.chunks_embedded)
        bar.close()
        rep.finish()
        return rep

    def record_source(self, source: Source, rep: SourceReport, now: str) -> None:
        last_error = rep.errors[-1]["error"] if rep.errors else None
        with self.registry.transaction() as db:
            db.execute("INSERT INTO sources (name, config, first_seen) VALUES (?,?,?) ON CONFLICT(name) DO UPDATE"
                       " SET config=excluded.config, removed_at=NULL",
                       (source.name, json.dumps(source.config, ensure_ascii=False, default=str), now))
            if rep.status == "failed":
                db.execute("UPDATE sources SET last_run=?, consecutive_failures=consecutive_failures+1, last_error=?"
                           " WHERE name=?", (now, last_error, source.name))
            else:
                db.execute("UPDATE sources SET last_run=?, last_success=?, consecutive_failures=0, last_error=?"
                           " WHERE name=?", (now, now, last_error, source.name))


def run_ingest(settings: Settings, sources: Sequence[Source], only: Sequence[str] | None = None,
               progress: bool = True, sources_file: str = "", wait_for_lock: bool = False) -> IngestReport:
    """Ingest the sources (all, or those named in ``only``) and return the run report."""
    with run_lock(settings, wait=wait_for_lock):
        ing = Ingestor(settings, progress=progress)
        report = IngestReport(run_id=f"{utcnow().strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}",
                              started=iso(utcnow()))
        with ing.registry.transaction() as db:
            db.execute("INSERT INTO runs (run_id, started, sources_file, status) VALUES (?,?,?,?)",
                       (report.run_id, report.started, sources_file, "running"))
        try:
            report.recovered_versions = ing.finish_pending()
            chosen = [s for s in sources if not only or s.name in only]
            with ThreadPoolExecutor(max_workers=WORKERS) as pool:
                for src in chosen:
                    rep = ing.run_source(src, pool)
                    report.sources.append(rep)
                    ing.record_source(src, rep, iso(utcnow()))
            known = {s.name for s in sources}
            report.removed_sources = [r["name"] for r in ing.registry.sources() if r["name"] not in known]
            with ing.registry.transaction() as db:
                db.executemany("UPDATE sources SET removed_at=COALESCE(removed_at, ?) WHERE name=?",
                               [(iso(utcnow()), name) for name in report.removed_sources])
        except BaseException as exc:  # a full disk, an unreachable store, kill: leave the run marked
            try:
                with ing.registry.transaction() as db:
                    db.execute("UPDATE runs SET finished=?, status='failed', report=? WHERE run_id=?",
                               (iso(utcnow()), json.dumps({"error": str(exc) or type(exc).__name__}), report.run_id))
            except Exception:  # noqa: BLE001 - the registry itself may be what failed
                log.warning("could not record the failed run %s", report.run_id)
            raise
        report.finished = iso(utcnow())
        with ing.registry.transaction() as db:
            db.execute("UPDATE runs SET finished=?, status=?, report=? WHERE run_id=?",
                       (report.finished, "partial" if report.failed else "ok",
                        json.dumps(report.to_json(), ensure_ascii=False), report.run_id))
        return report
