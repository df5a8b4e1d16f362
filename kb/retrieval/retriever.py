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

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from kb.models import Passage
from kb.registry import Registry
from kb.retrieval.bm25 import BM25Index
from kb.retrieval.catalogue import ChunkCatalogue
from kb.retrieval.filters import Filters
from kb.retrieval.fusion import BM25_WEIGHT, DENSE_WEIGHT, MIN_COVERAGE, NEAR_DUPLICATE, jaccard, rrf_fuse
from kb.settings import Settings
from kb.text.tokenize import tokenize, tokenize_query
from kb.vectors.protocols import Embedder, VectorStore

log = logging.getLogger(__name__)


logging.getLogger("bm25s").setLevel(logging.WARNING)


#: How many candidates each retriever contributes to the fusion. The dense side is the expensive one
#: (HNSW search time grows with the number of results); 20 ranks as well as 50 on the eval questions.
CANDIDATES = 50


DENSE_CANDIDATES = 20
#: The best BM25 passages the answer step also reads when fusion ranked them out of the passages.
LEXICAL_EXTRA = 2


#: Extra dense results asked for without a filter, to survive dropping superseded versions afterwards.
DENSE_SLACK = 6


#: Diversity: a document's passages after the first MAX_PER_DOC have their fused score multiplied
#: by DIVERSITY_DECAY per extra passage, so one long document does not fill the list unless it is far ahead.
MAX_PER_DOC = 2


DIVERSITY_DECAY = 0.8
#: A follow-up question's previously cited documents: their passages' fused score times (1 + this).
FOLLOW_UP_BOOST = 0.25


#: A long-lived retriever (the app, a batch) checks this often whether ingest changed the index.
RELOAD_CHECK_SECONDS = 1.0


@dataclass
class FusedHit:
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
    hits: list[FusedHit]
    query_tokens: list[str]
    query_vector: np.ndarray | None
    timings: dict[str, float] = field(default_factory=dict)
    coverage: float = 1.0  # share of the question's own tokens that the index vocabulary knows
    #: Cosines of every dense candidate the store returned (best first): the question's own score
    #: distribution, against which the best evidence is judged (cross-lingual cosines sit lower).
    dense_scores: list[float] = field(default_factory=list)
    #: BM25's best ``LEXICAL_EXTRA`` passages where fusion left them out of ``passages`` (0-2; dense similarity
    #: favours passages that name the document over the one clause that answers): more sentences for the
    #: answer step to weigh, not part of the ranking.
    lexical_passages: list[Passage] = field(default_factory=list)
    lexical_hits: list[FusedHit] = field(default_factory=list)


class Retriever:
    """Dense + BM25 retrieval over one index (store + registry), loaded once and reused."""

    def __init__(self, settings: Settings, registry: Registry, store: VectorStore, embedder: Embedder) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.embedder = embedder
        self._lock = threading.Lock()
        self._catalog: ChunkCatalogue | None = None
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
        return self.registry.index_state()

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
            catalog = ChunkCatalogue.load(self.registry)
            cache = self.settings.data_dir / "bm25"
            self._bm25 = BM25Index(catalog, cache, key[0])
            self._catalog = catalog
            self._token_sets = {}
            self._loaded_generation = key

    @property
    def catalog(self) -> ChunkCatalogue:
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
    def search(self, question: str, language: str = "en", filters: Filters | None = None, top_k: int = 8,
               candidates: int = CANDIDATES, query_vector: np.ndarray | None = None,
               prefer_docs: frozenset[str] = frozenset()) -> Retrieval:
        """Rank passages for a question; ``top_k`` distinct passages, best first.

        ``prefer_docs`` (a follow-up question's previously cited documents) raises their passages' fused
        score by ``FOLLOW_UP_BOOST``: they win close calls, never over a clearly better passage."""
        filters = filters or Filters()
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
        hits = [FusedHit(row=row, fused=score, dense=dense_score.get(row), dense_rank=dense_rank.get(row),
                    bm25=float(lex_scores[row]) if row in lex_rank else None, bm25_rank=lex_rank.get(row))
                for row, score in fused]
        if prefer_docs:
            for h in hits:
                if cat.rows.column("doc_id")[h.row] in prefer_docs:
                    h.fused *= 1.0 + FOLLOW_UP_BOOST
            hits.sort(key=lambda h: -h.fused)
        hits = self._dedup(hits, top_k)
        shown = {r for h in hits for r in (h.row, *h.also)}
        fused_score = dict(fused)
        extra = [FusedHit(row=r, fused=fused_score[r], dense=dense_score.get(r), dense_rank=dense_rank.get(r),
                          bm25=float(lex_scores[r]), bm25_rank=lex_rank[r])
                 for r in lex_rows[:LEXICAL_EXTRA] if r not in shown]
        timings["fuse"] = time.perf_counter() - t

        t = time.perf_counter()
        every = hits + extra
        got = cat.passages([h.row for h in every], [h.fused for h in every])
        # A passage whose text was pruned since the catalogue was loaded (it reloads within a second) is dropped.
        ranked = [(p, h) for p, h in zip(got[:len(hits)], hits) if p.text]
        lexical = [(p, h) for p, h in zip(got[len(hits):], extra) if p.text]
        timings["texts"] = time.perf_counter() - t
        return Retrieval([p for p, _ in ranked], [h for _, h in ranked], tokens, qvec, timings, coverage=coverage,
                         dense_scores=[score for _, score in dense],
                         lexical_passages=[p for p, _ in lexical], lexical_hits=[h for _, h in lexical])

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

    def _dedup(self, hits: list[FusedHit], top_k: int) -> list[FusedHit]:
        """Fold near-identical passages into the better-ranked one (``FusedHit.also``); diversify documents.

        A document's third and later passages lose some of their score (``DIVERSITY_DECAY``), so that one
        long document cannot fill the whole list unless it is clearly ahead.
        """
        kept: list[FusedHit] = []
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
            doc = self.catalog.rows.column("doc_id")[h.row]
            per_doc[doc] = per_doc.get(doc, 0) + 1
            if per_doc[doc] > MAX_PER_DOC:
                h.fused *= DIVERSITY_DECAY ** (per_doc[doc] - MAX_PER_DOC)
        kept.sort(key=lambda h: -h.fused)
        return kept[:max(top_k, 1)] if top_k else kept

    def duplicates_of(self, doc_id: str) -> list[dict[str, str]]:
        """Documents ingest recorded as copies of ``doc_id`` (title, publisher, url)."""
        return [{k: d[k] for k in ("doc_id", "title", "publisher", "url")} for d in self.registry.copies_of(doc_id)]


_POOL = None


_POOL_LOCK = threading.Lock()


def _pool():
    """Worker threads for the dense half of a search (shared by every retriever in the process)."""
    global _POOL
    if _POOL is None:
        with _POOL_LOCK:
            if _POOL is None:
                from concurrent.futures import ThreadPoolExecutor

                _POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kb-dense")
    return _POOL


def _top_rows_masked(scores: np.ndarray, mask: np.ndarray, n: int) -> list[int]:
    """``top_rows`` over the rows the mask allows; cheap when most rows are allowed."""
    if not len(scores):
        return []
    first = [r for r in top_rows(scores, 2 * n) if mask[r]]
    if len(first) >= n or int(np.count_nonzero(scores > 0)) <= 2 * n:
        return first[:n]
    return top_rows(np.where(mask, scores, 0.0), n)


#: Sample size for the score cut of ``top_rows`` over large indexes.
_SAMPLE = 20000


def top_rows(scores: np.ndarray, n: int) -> list[int]:
    """Rows with the ``n`` highest positive scores, best first (ties by row order)."""
    if not len(scores):
        return []
    # Only the positive scores compete: BM25 leaves most rows at 0, and partitioning an array of mostly
    # equal values is slow (260 ms instead of 2 ms over a million rows).
    idx = np.flatnonzero(scores > 0)
    if len(idx) > max(4 * n, _SAMPLE):
        # A cut from an evenly spaced sample that keeps about 4n rows; exact whenever n rows clear it
        # (then every one of the n best does), else the full partition below.
        vals = scores[idx]
        sample = vals[:: len(vals) // _SAMPLE]
        k = min(len(sample) - 1, 4 * n * len(sample) // len(vals) + 1)
        above = idx[vals >= np.partition(sample, len(sample) - k)[len(sample) - k]]
        if len(above) >= n:
            idx = above
    if len(idx) > n:
        idx = idx[np.argpartition(scores[idx], len(idx) - n)[len(idx) - n:]]
    return sorted((int(i) for i in idx), key=lambda i: (-float(scores[i]), i))
