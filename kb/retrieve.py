"""Hybrid retrieval: dense (the packaged multilingual embedder, query prefix) fused with BM25.

- The BM25 index covers every indexed chunk of every version (so ``--as-of`` works) and is built
  lazily from the registry, then cached under ``<data>/bm25/<key>/`` where the key is the registry
  generation plus a hash of the chunk-id set: a rebuilt or re-ingested index never reuses a stale one.
- Filters (language, doctype, publisher, source, published date range, version validity) are applied
  identically on both sides: as a Chroma ``where`` for the dense query and as a boolean mask over
  an in-memory catalogue of chunks for BM25.
- Fusion is weighted reciprocal-rank fusion (see ``rrf_fuse``).
- Near-identical passages (syndicated copies, boilerplate shared by two documents) are folded into
  the best-ranked one, which records the others as "also reported by".
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import AbstractSet as Set, Any, Iterable, Sequence

import numpy as np

from kb.models import Passage
from kb.registry import Registry, parse_when
from kb.settings import FOREVER, Settings
from kb.tokenize import stemmer_backend, tokenize, tokenize_query

log = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)

#: How many candidates each retriever contributes to the fusion. The dense side is the expensive one
#: (HNSW search time grows with the number of results); 20 ranks as well as 50 on the eval questions.
CANDIDATES = 50
DENSE_CANDIDATES = 20
#: Extra dense results asked for without a filter, to survive dropping superseded versions afterwards.
DENSE_SLACK = 6
#: Reciprocal-rank constant and weights (dense, BM25), measured with ``python -m kb eval``.
RRF_K = 60
DENSE_WEIGHT = 1.0
BM25_WEIGHT = 0.5
#: BM25's weight is scaled by the share of question tokens the index knows, but never below this.
MIN_COVERAGE = 0.25
#: Token-set Jaccard at or above which two passages count as the same text.
NEAR_DUPLICATE = 0.8
#: Diversity: a document's passages after the first MAX_PER_DOC have their fused score multiplied
#: by DIVERSITY_DECAY per extra passage, so one long document does not fill the list unless it is far ahead.
MAX_PER_DOC = 2
DIVERSITY_DECAY = 0.8
#: A long-lived retriever (the app, a batch) checks this often whether ingest changed the index.
RELOAD_CHECK_SECONDS = 1.0
#: Bump when tokenisation or what goes into the BM25 documents changes (invalidates cached indexes).
BM25_FORMAT = 2


@dataclass(frozen=True)
class Filters:
    """What a question may be answered from. Empty fields do not filter."""

    language: str | None = None
    doctype: str | None = None
    publisher: str | None = None
    source: str | None = None
    since: str | None = None
    until: str | None = None
    as_of: str | None = None

    def active(self) -> bool:
        return any(getattr(self, f) for f in ("language", "doctype", "publisher", "source", "since", "until"))

    def to_json(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v}


@dataclass
class Hit:
    """A fused candidate with what each retriever thought of it."""

    row: int
    fused: float = 0.0
    dense: float | None = None
    dense_rank: int | None = None
    bm25: float | None = None
    bm25_rank: int | None = None
    also: list[int] = field(default_factory=list)


@dataclass
class Retrieval:
    """Ranked passages plus the evidence scores the answerer uses."""

    passages: list[Passage]
    hits: list[Hit]
    query_tokens: list[str]
    query_vector: np.ndarray | None
    timings: dict[str, float] = field(default_factory=dict)
    coverage: float = 1.0  # share of the question's own tokens that the index vocabulary knows


def rrf_fuse(rankings: Sequence[Sequence[Any]], weights: Sequence[float] | None = None,
             k: int | None = None) -> list[tuple[Any, float]]:
    """Weighted reciprocal-rank fusion: ``sum_i w_i / (k + rank_i)`` (rank from 1), best first.

    Ties keep the order in which items were first seen (earlier rankings first).
    """
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    k = RRF_K if k is None else k
    scores: dict[Any, float] = {}
    for ranking, w in zip(rankings, weights):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + w / (k + rank)
    order = {item: i for i, item in enumerate(dict.fromkeys(x for r in rankings for x in r))}
    return sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))


def jaccard(a: Set[Any], b: Set[Any]) -> float:
    """Token-set Jaccard similarity (0 for two empty sets)."""
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


class Catalog:
    """Every indexed chunk with the metadata filters need, as parallel columns."""

    COLUMNS = ("chunk_id", "version_id", "doc_id", "start", "end", "language", "text", "valid_from", "valid_to",
               "published", "retrieved", "doc_language", "title", "source", "url", "publisher", "doctype")

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.index = {r["chunk_id"]: i for i, r in enumerate(rows)}
        self.valid_from = np.array([r["valid_from"] for r in rows], dtype=np.int64)
        self.valid_to = np.array([r["valid_to"] for r in rows], dtype=np.int64)
        self.published_ts = np.array([_date_ts(r["published"]) for r in rows], dtype=np.int64)

        def codes(key: str) -> tuple[np.ndarray, list[str]]:
            values = sorted({(r[key] or "") for r in rows})
            pos = {v: i for i, v in enumerate(values)}
            return np.array([pos[r[key] or ""] for r in rows], dtype=np.int32), values

        self.url_group = self._url_groups(rows)
        self.language, self.languages = codes("language")
        self.doc_language, self.doc_languages = codes("doc_language")
        self.doctype, self.doctypes = codes("doctype")
        self.publisher, self.publishers = codes("publisher")
        self.source, self.sources = codes("source")

    def __len__(self) -> int:
        return len(self.rows)

    @staticmethod
    def _url_groups(rows: list[dict[str, Any]]) -> np.ndarray:
        """Group id of rows whose *different* documents share one URL (-1 when the URL has one document).

        Two files with the same front-matter URL are two versions of one page that ingest kept as two
        documents; retrieval treats them as versions (the latest published one by default).
        """
        docs_by_url: dict[str, set[str]] = {}
        for r in rows:
            if r["url"]:
                docs_by_url.setdefault(r["url"].rstrip("/"), set()).add(r["doc_id"])
        ids = {u: i for i, u in enumerate(sorted(u for u, d in docs_by_url.items() if len(d) > 1))}
        return np.array([ids.get((r["url"] or "").rstrip("/"), -1) for r in rows], dtype=np.int64)

    def _latest_of_groups(self, m: np.ndarray, at: int | None) -> np.ndarray:
        """Within each URL group keep only the document published last (at or before ``at`` when given)."""
        if not (self.url_group >= 0).any():
            return m
        out = m.copy()
        for g in np.unique(self.url_group[self.url_group >= 0]):
            rows = np.where((self.url_group == g) & m)[0]
            dated = [i for i in rows if self.published_ts[i] and (at is None or self.published_ts[i] <= at)]
            if not dated:
                continue
            best = max(self.published_ts[i] for i in dated)
            keep_docs = {self.rows[i]["doc_id"] for i in dated if self.published_ts[i] == best}
            for i in rows:
                if self.rows[i]["doc_id"] not in keep_docs and (self.published_ts[i] or at is None):
                    out[i] = False
        return out

    @classmethod
    def load(cls, registry: Registry) -> "Catalog":
        rows = registry.query(
            'SELECT c.chunk_id, c.version_id, c.doc_id, c.start, c."end" AS "end", c.language, c.text, '
            "v.valid_from, v.valid_to, v.published, v.retrieved, v.language AS doc_language, "
            "COALESCE(NULLIF(v.title, ''), d.title, '') AS title, d.source, d.url, d.publisher, d.doctype "
            "FROM chunks c JOIN versions v ON v.version_id = c.version_id JOIN documents d ON d.doc_id = c.doc_id "
            "WHERE v.status = 'indexed' ORDER BY c.chunk_id")
        return cls([{k: r[k] for k in cls.COLUMNS} for r in rows])

    def passage(self, i: int, score: float = 0.0) -> Passage:
        r = self.rows[i]
        return Passage(chunk_id=r["chunk_id"], doc_id=r["doc_id"], version_id=r["version_id"], text=r["text"],
                       start=int(r["start"]), end=int(r["end"]), url=r["url"] or "", title=r["title"] or "",
                       publisher=r["publisher"] or "", doctype=r["doctype"] or "other",
                       language=r["language"] or "und", published=r["published"] or "",
                       retrieved=r["retrieved"] or "", source=r["source"] or "", score=float(score))

    # -- filters ----------------------------------------------------------------------------
    def mask(self, f: Filters) -> np.ndarray:
        """Which chunks the filters allow (the versions valid at ``as_of``, or the current ones); cached."""
        cache = self.__dict__.setdefault("_masks", {})
        got = cache.get(f)
        if got is None:
            got = self._mask(f)
            if len(cache) > 64:
                cache.clear()
            cache[f] = got
        return got

    def _mask(self, f: Filters) -> np.ndarray:
        if f.as_of:
            at = parse_when(f.as_of)
            m = self._latest_of_groups((self.valid_from <= at) & (self.valid_to > at), at)
        else:
            m = self._latest_of_groups(self.valid_to == FOREVER, None)
        if f.language:
            langs = _split(f.language)
            m &= (np.isin(self.language, [i for i, v in enumerate(self.languages) if v in langs])
                  | np.isin(self.doc_language, [i for i, v in enumerate(self.doc_languages) if v in langs]))
        if f.doctype:
            m &= np.isin(self.doctype, [i for i, v in enumerate(self.doctypes) if v in _split(f.doctype)])
        if f.source:
            m &= np.isin(self.source, [i for i, v in enumerate(self.sources) if v in _split(f.source)])
        if f.publisher:
            m &= np.isin(self.publisher, [self.publishers.index(v) for v in self.matching_publishers(f.publisher)])
        if f.since:
            m &= self.published_ts >= _date_ts(f.since)
        if f.until:
            m &= (self.published_ts > 0) & (self.published_ts <= _date_ts(f.until, end_of_day=True))
        return m

    def matching_publishers(self, wanted: str) -> list[str]:
        """Publishers whose name contains any of the comma-separated names asked for (case-insensitive)."""
        needles = [w.casefold() for w in _split(wanted)]
        return [p for p in self.publishers if p and any(n in p.casefold() for n in needles)]

    def where(self, f: Filters) -> dict[str, Any]:
        """The same filters as a Chroma ``where`` clause over the chunk metadata."""
        clauses: list[dict[str, Any]] = []
        if f.as_of:
            at = parse_when(f.as_of)
            clauses += [{"valid_from": {"$lte": at}}, {"valid_to": {"$gt": at}}]
        else:
            clauses.append({"valid_to": FOREVER})
        if f.language:
            langs = sorted(_split(f.language))
            clauses.append({"$or": [{"language": {"$in": langs}}, {"doc_language": {"$in": langs}}]})
        if f.doctype:
            clauses.append({"doctype": {"$in": sorted(_split(f.doctype))}})
        if f.source:
            clauses.append({"source": {"$in": sorted(_split(f.source))}})
        if f.publisher:
            clauses.append({"publisher": {"$in": self.matching_publishers(f.publisher) or ["\u0000none"]}})
        if f.since:
            clauses.append({"published_ts": {"$gte": _date_ts(f.since)}})
        if f.until:
            clauses += [{"published_ts": {"$gt": 0}},
                        {"published_ts": {"$lte": _date_ts(f.until, end_of_day=True)}}]
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _split(value: str) -> set[str]:
    return {v.strip() for v in str(value).split(",") if v.strip()}


def _date_ts(value: str | None, end_of_day: bool = False) -> int:
    """Epoch seconds of an ISO date or date-time; a bare date means its start (or its end); 0 when unknown."""
    value = (value or "").strip()
    if not value:
        return 0
    try:
        ts = parse_when(value)  # a bare date maps to the last second of that day
    except ValueError:
        return 0
    return ts - 86399 if len(value) == 10 and not end_of_day else ts


class BM25Index:
    """bm25s over the catalogue, tokenised per chunk language, cached on disk."""

    def __init__(self, catalog: Catalog, cache_dir: Path | None, generation: int) -> None:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets itself to DEBUG and would print

        self.catalog = catalog
        ids = [r["chunk_id"] for r in catalog.rows]
        digest = hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()[:16]
        self.key = f"g{generation}-f{BM25_FORMAT}-{stemmer_backend()}-{digest}"
        path = cache_dir / self.key if cache_dir else None
        self.model = None
        if path and (path / "ids.json").exists():
            try:
                if json.loads((path / "ids.json").read_text(encoding="utf-8")) == ids:
                    self.model = bm25s.BM25.load(str(path), load_corpus=False, show_progress=False)
            except Exception as exc:  # noqa: BLE001 - a damaged cache is rebuilt
                log.warning("BM25 cache %s unreadable (%s); rebuilding", path, exc)
                self.model = None
        if self.model is None:
            self.model = self._build(catalog)
            if path:
                self._save(path, ids)
        self.n_docs = len(ids)
        self._rows: tuple[np.ndarray, np.ndarray] | None = None
        vocab = self.model.vocab_dict
        indptr = np.asarray(self.model.scores["indptr"])
        df = np.diff(indptr) if len(indptr) > 1 else np.zeros(0)
        self._idf = {tok: float(np.log(1 + (self.n_docs - df[i] + 0.5) / (df[i] + 0.5)))
                     for tok, i in vocab.items() if i < len(df)}

    @staticmethod
    def _build(catalog: Catalog) -> Any:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets itself to DEBUG and would print

        # The document title goes with every chunk: "the OpenAI Services Agreement" names the document,
        # rarely the passage.
        corpus = [(tokenize(r["title"] or "", r["doc_language"] or "en") + tokenize(r["text"], r["language"] or "en"))
                  or [""] for r in catalog.rows]
        model = bm25s.BM25(k1=1.2, b=0.75)
        if corpus:
            model.index(corpus, show_progress=False)
        return model

    def _save(self, path: Path, ids: list[str]) -> None:
        try:
            tmp = path.with_name(path.name + f".tmp{threading.get_ident()}")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            self.model.save(str(tmp), show_progress=False)
            (tmp / "ids.json").write_text(json.dumps(ids), encoding="utf-8")
            if path.exists():
                shutil.rmtree(path, ignore_errors=True)
            tmp.rename(path)
            for old in path.parent.iterdir():  # keep only the current index
                if old.name != path.name and not old.name.startswith(path.name + ".tmp"):
                    shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:  # a read-only data dir still answers, just without the cache
            log.warning("cannot cache the BM25 index in %s: %s", path, exc)

    def row_tokens(self, row: int) -> frozenset[int]:
        """The distinct token ids of one catalogue row (from a row-major copy of the index, built once)."""
        if self._rows is None:
            from scipy.sparse import csc_matrix

            sc = self.model.scores
            shape = (self.n_docs, len(sc["indptr"]) - 1)
            csr = csc_matrix((np.ones_like(sc["data"], dtype=np.int8), sc["indices"], sc["indptr"]),
                             shape=shape).tocsr()
            self._rows = (csr.indptr, csr.indices)
        indptr, indices = self._rows
        return frozenset(indices[indptr[row]:indptr[row + 1]].tolist())

    def idf(self, token: str) -> float:
        """Inverse document frequency of a token (0 when the index never saw it)."""
        return self._idf.get(token, 0.0)

    def scores(self, tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every catalogue row for these query tokens."""
        known = [t for t in tokens if t in self.model.vocab_dict]
        if not known or not self.n_docs:
            return np.zeros(self.n_docs, dtype=np.float32)
        return np.asarray(self.model.get_scores(known), dtype=np.float32)


class Retriever:
    """Dense + BM25 retrieval over one index (store + registry), loaded once and reused."""

    def __init__(self, settings: Settings, registry: Registry, store: Any, embedder: Any) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.embedder = embedder
        self._lock = threading.Lock()
        self._catalog: Catalog | None = None
        self._bm25: BM25Index | None = None
        self._loaded_generation: tuple[int, int] | None = None
        self._token_sets: dict[int, frozenset[int]] = {}
        self._checked = 0.0

    # -- lazy state ---------------------------------------------------------------------------
    def _state_key(self) -> tuple[int, int]:
        """What changes when ingest indexes or supersedes a version: the generation and the indexed versions.

        Two small queries (the versions table has a row per document version, not per chunk), so checking
        before every search stays well under a millisecond at 100k chunks.
        """
        n = self.registry.query("SELECT COUNT(*) FROM versions WHERE status='indexed'")[0][0]
        return self.registry.generation(), int(n)

    def _maybe_reload(self) -> None:
        """Pick up what a running ingest indexed since the last search (looked at most once a second)."""
        now = time.monotonic()
        if self._catalog is None or now - self._checked >= RELOAD_CHECK_SECONDS:
            self._checked = now
            self.load()

    def load(self, force: bool = False) -> None:
        """Load (or reload when the index changed) the catalogue and the BM25 index."""
        with self._lock:
            key = self._state_key()
            if not force and self._catalog is not None and key == self._loaded_generation:
                return
            if self._catalog is not None and hasattr(self.store, "refresh"):
                self.store.refresh()  # an ingest wrote: let dense queries see its vectors (chroma#3792)
            catalog = Catalog.load(self.registry)
            cache = self.settings.data_dir / "bm25"
            self._bm25 = BM25Index(catalog, cache, key[0])
            self._catalog = catalog
            self._token_sets = {}
            self._loaded_generation = key

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self.load()
        assert self._catalog is not None
        return self._catalog

    @property
    def bm25(self) -> BM25Index:
        if self._bm25 is None:
            self.load()
        assert self._bm25 is not None
        return self._bm25

    def index_languages(self) -> list[str]:
        """The main languages of the indexed chunks (those holding at least 10% of them), English first."""
        cat = self.catalog
        cached = cat.__dict__.get("_main_languages")
        if cached is not None:
            return cached
        if not len(cat):
            return ["en"]
        counts = np.bincount(cat.language, minlength=len(cat.languages))
        main = [cat.languages[i] for i in np.argsort(-counts) if counts[i] >= 0.1 * len(cat)]
        main = [m for m in main if m and m != "und"]
        cat.__dict__["_main_languages"] = sorted(set(main) | {"en"}, key=lambda x: (x != "en", x))
        return cat.__dict__["_main_languages"]

    # -- search -------------------------------------------------------------------------------
    def search(self, question: str, language: str = "en", filters: Filters = Filters(), top_k: int = 8,
               candidates: int = CANDIDATES, query_vector: np.ndarray | None = None) -> Retrieval:
        """Rank passages for a question; ``top_k`` distinct passages, best first."""
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        self._maybe_reload()
        cat, bm25 = self.catalog, self.bm25
        mask = cat.mask(filters)
        timings["filter"] = time.perf_counter() - t0

        # The dense side (embed the question, query the store) runs on a worker thread while this one
        # scores BM25: both spend their time outside the GIL (ctypes, Chroma's Rust core, numpy).
        def dense_side() -> tuple[np.ndarray, list[tuple[int, float]], float, float]:
            t1 = time.perf_counter()
            vec = query_vector if query_vector is not None else np.asarray(self.embedder.embed_query(question))
            t2 = time.perf_counter()
            got = self._dense(vec, filters, mask, min(candidates, DENSE_CANDIDATES))
            return vec, got, t2 - t1, time.perf_counter() - t2

        pending = _pool().submit(dense_side)
        t = time.perf_counter()
        tokens = tokenize_query(question, language, also=self.index_languages())
        own = tokenize(question, language)
        # How much of the question the index vocabulary can express: low for a question in a language
        # the documents are not written in, where BM25 only matches names and stray cognates.
        coverage = (sum(1 for tok in own if bm25.idf(tok) > 0) / len(own)) if own else 0.0
        lex_scores = bm25.scores(tokens)
        lex_rows = _top_rows_masked(lex_scores, mask, candidates)
        timings["bm25"] = time.perf_counter() - t
        qvec, dense, timings["embed"], timings["dense"] = pending.result()

        t = time.perf_counter()
        dense_rows = [r for r, _ in dense]
        fused = rrf_fuse([dense_rows, lex_rows], [DENSE_WEIGHT, BM25_WEIGHT * max(MIN_COVERAGE, coverage)])
        dense_score = dict(dense)
        dense_rank = {r: i for i, r in enumerate(dense_rows, start=1)}
        lex_rank = {r: i for i, r in enumerate(lex_rows, start=1)}
        hits = [Hit(row=row, fused=score, dense=dense_score.get(row), dense_rank=dense_rank.get(row),
                    bm25=float(lex_scores[row]) if row in lex_rank else None, bm25_rank=lex_rank.get(row))
                for row, score in fused]
        hits = self._dedup(hits, top_k)
        timings["fuse"] = time.perf_counter() - t
        passages = [cat.passage(h.row, h.fused) for h in hits]
        return Retrieval(passages, hits, tokens, qvec, timings, coverage=coverage)

    def _dense(self, qvec: np.ndarray, filters: Filters, mask: np.ndarray, n: int) -> list[tuple[int, float]]:
        """Dense candidates as (catalogue row, cosine), restricted to the mask.

        Without filters the store is asked without a ``where`` (its fastest path) and the few
        superseded versions are dropped here; when too few survive, or filters are set, the store
        filters itself.
        """
        cat = self.catalog
        allowed = int(mask.sum())
        if not allowed:
            return []
        n = min(n, allowed)

        def keep(hits: Iterable[Any]) -> list[tuple[int, float]]:
            out = []
            for h in hits:
                row = cat.index.get(h.chunk_id)
                if row is not None and mask[row]:
                    out.append((row, float(h.score)))
            return out

        if not filters.active() and not filters.as_of:
            got = keep(self.store.query(qvec, top_k=min(len(cat), n + DENSE_SLACK), payload=False))
            if len(got) >= n:
                return got[:n]
        return keep(self.store.query(qvec, top_k=n, where=cat.where(filters), payload=False))[:n]

    def token_set(self, row: int) -> frozenset[int]:
        """The distinct BM25 token ids of a catalogue row (its title's and its text's)."""
        got = self._token_sets.get(row)
        if got is None:
            got = self.bm25.row_tokens(row)
            self._token_sets[row] = got
        return got

    def _dedup(self, hits: list[Hit], top_k: int) -> list[Hit]:
        """Fold near-identical passages into the better-ranked one (``Hit.also``); diversify documents.

        A document's third and later passages lose some of their score (``DIVERSITY_DECAY``), so that one
        long document cannot fill the whole list unless it is clearly ahead.
        """
        kept: list[Hit] = []
        for h in hits:
            tokens = self.token_set(h.row)
            twin = next((k for k in kept if jaccard(tokens, self.token_set(k.row)) >= NEAR_DUPLICATE), None)
            if twin is not None:
                twin.also.append(h.row)
                continue
            kept.append(h)
            if len(kept) >= top_k * 3:
                break
        per_doc: dict[str, int] = {}
        for h in kept:
            doc = self.catalog.rows[h.row]["doc_id"]
            per_doc[doc] = per_doc.get(doc, 0) + 1
            if per_doc[doc] > MAX_PER_DOC:
                h.fused *= DIVERSITY_DECAY ** (per_doc[doc] - MAX_PER_DOC)
        kept.sort(key=lambda h: -h.fused)
        return kept[:max(top_k, 1)] if top_k else kept

    def duplicates_of(self, doc_id: str) -> list[dict[str, str]]:
        """Documents ingest recorded as copies of ``doc_id`` (title, publisher, url)."""
        rows = self.registry.query("SELECT doc_id, title, publisher, url FROM documents WHERE duplicate_of=? "
                                   "ORDER BY publisher, url", (doc_id,))
        return [{"doc_id": r["doc_id"], "title": r["title"] or "", "publisher": r["publisher"] or "",
                 "url": r["url"] or ""} for r in rows]


_POOL = None
_POOL_LOCK = threading.Lock()


def _pool():  # noqa: ANN202
    """Worker threads for the dense half of a search (shared by every retriever in the process)."""
    global _POOL
    if _POOL is None:
        with _POOL_LOCK:
            if _POOL is None:
                from concurrent.futures import ThreadPoolExecutor

                _POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kb-dense")
    return _POOL


def _top_rows_masked(scores: np.ndarray, mask: np.ndarray, n: int) -> list[int]:
    """``_top_rows`` over the rows the mask allows; cheap when most rows are allowed."""
    if not len(scores):
        return []
    first = [r for r in _top_rows(scores, 2 * n) if mask[r]]
    if len(first) >= n or int(np.count_nonzero(scores > 0)) <= 2 * n:
        return first[:n]
    return _top_rows(np.where(mask, scores, 0.0), n)


def _top_rows(scores: np.ndarray, n: int) -> list[int]:
    """Rows with the ``n`` highest positive scores, best first (ties by row order)."""
    if not len(scores):
        return []
    m = len(scores)
    idx = np.argpartition(scores, m - n)[m - n:] if m > n else np.arange(m)
    idx = idx[scores[idx] > 0]
    return sorted((int(i) for i in idx), key=lambda i: (-float(scores[i]), i))
