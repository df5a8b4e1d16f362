"""Reciprocal-rank fusion, de-duplication measure and filter plumbing (no index needed)."""
from __future__ import annotations

import numpy as np

from kb.retrieval.catalogue import ChunkCatalogue
from kb.retrieval.filters import Filters
from kb.retrieval.fusion import jaccard, rrf_fuse
from kb.retrieval.retriever import top_rows
from kb.times import FOREVER, date_ts


def test_rrf_fuse_rewards_agreement() -> None:
    fused = rrf_fuse([["a", "b", "c"], ["c", "a", "d"]], k=60)
    order = [item for item, _ in fused]
    assert order[0] == "a"  # 1st and 2nd beats 3rd and 1st
    assert set(order) == {"a", "b", "c", "d"}
    assert order.index("c") < order.index("b")


def test_rrf_fuse_weights_and_single_list() -> None:
    fused = dict(rrf_fuse([["x"], ["y"]], weights=[1.0, 0.5], k=10))
    assert fused["x"] > fused["y"]
    assert [i for i, _ in rrf_fuse([["p", "q"]])] == ["p", "q"]
    assert rrf_fuse([[], []]) == []


def test_rrf_fuse_ties_keep_first_seen_order() -> None:
    assert [i for i, _ in rrf_fuse([["a", "b"], ["b", "a"]])] == ["a", "b"]


def test_jaccard_near_duplicates() -> None:
    a = set("musk testifi xai use openai model train grok".split())
    assert jaccard(a, a | {"court"}) >= 0.8
    assert jaccard(a, {"anthropic", "polici"}) == 0.0
    assert jaccard(set(), a) == 0.0


def test_top_rows_skips_zero_scores() -> None:
    assert top_rows(np.array([0.0, 2.0, 1.0, 0.0, 3.0]), 3) == [4, 1, 2]
    assert top_rows(np.array([0.0, 0.0]), 5) == []


def _catalog() -> ChunkCatalogue:
    base = dict(start=0, end=10, text="t", retrieved="2026-01-01T00:00:00Z", title="T", url="u1")
    rows = [
        dict(base, chunk_id="v1-0000", version_id="v1", doc_id="d1", language="en", doc_language="en",
             valid_from=100, valid_to=200, published="2025-01-02", source="corpus", publisher="xAI (via OTA)", doctype="tos"),
        dict(base, chunk_id="v2-0000", version_id="v2", doc_id="d1", language="en", doc_language="en",
             valid_from=200, valid_to=FOREVER, published="2026-06-26", source="corpus", publisher="xAI (via OTA)", doctype="tos"),
        dict(base, chunk_id="v3-0000", version_id="v3", doc_id="d2", url="u2", language="zh", doc_language="en",
             valid_from=50, valid_to=FOREVER, published="", source="seeds", publisher="TechCrunch", doctype="news"),
    ]
    return ChunkCatalogue(rows)


def test_mask_latest_version_by_default_and_as_of() -> None:
    cat = _catalog()
    assert list(cat.mask(Filters())) == [False, True, True]
    assert list(cat.mask(Filters(as_of="1970-01-01T00:02:30Z"))) == [True, False, True]


def test_mask_filters_language_publisher_doctype_dates() -> None:
    cat = _catalog()
    assert list(cat.mask(Filters(language="zh"))) == [False, False, True]
    assert list(cat.mask(Filters(language="en"))) == [False, True, True]  # document language counts too
    assert list(cat.mask(Filters(publisher="xai"))) == [False, True, False]
    assert list(cat.mask(Filters(doctype="news,court"))) == [False, False, True]
    assert list(cat.mask(Filters(since="2026-01-01"))) == [False, True, False]
    assert list(cat.mask(Filters(until="2026-01-01"))) == [False, False, False]  # unknown dates excluded


def test_where_mirrors_mask() -> None:
    cat = _catalog()
    assert cat.where(Filters()) == {"valid_to": FOREVER}
    w = cat.where(Filters(publisher="techcrunch", since="2026-06-26"))
    assert {"publisher": {"$in": ["TechCrunch"]}} in w["$and"]
    assert {"published_ts": {"$gte": date_ts("2026-06-26")}} in w["$and"]


def test_same_url_documents_count_as_versions_latest_published_wins() -> None:
    """Two files with one front-matter URL (xAI's AUP of 2025 and of 2026) are versions of one page."""
    base = dict(start=0, end=10, text="t", retrieved="", title="T", url="https://x.ai/aup", language="en",
                doc_language="en", valid_from=1_790_000_000, valid_to=FOREVER, source="corpus", publisher="xAI",
                doctype="tos")
    rows = [
        dict(base, chunk_id="a-0000", version_id="a", doc_id="old", published="2025-01-02"),
        dict(base, chunk_id="b-0000", version_id="b", doc_id="new", published="2026-06-26"),
        dict(base, chunk_id="c-0000", version_id="c", doc_id="other", published="2024-01-01", url="https://y.ai"),
    ]
    cat = ChunkCatalogue(rows)
    assert list(cat.mask(Filters())) == [False, True, True]
    assert list(cat.mask(Filters(as_of="2025-06-01"))) == [False, False, False]  # the index held nothing yet
    # indexed long ago: at a moment between the two publication dates, the older text is the one in force
    early = ChunkCatalogue([dict(r, valid_from=0) for r in rows])
    assert list(early.mask(Filters(as_of="2025-06-01"))) == [True, False, True]


def test_bm25_over_an_index_with_no_indexed_chunk_yet() -> None:
    """During the first ingest the catalogue is empty: BM25 answers with nothing instead of failing."""
    from kb.retrieval.bm25 import BM25Index

    bm25 = BM25Index(ChunkCatalogue([]), None, 0)
    assert bm25.scores(["court"]).shape == (0,)
    assert bm25.idf("court") == 0.0


def test_bm25_cache_is_memory_mapped_and_scores_like_the_built_index(tmp_path) -> None:
    """The on-disk index is shared by processes through mmap; its scores equal a fresh build's."""
    from kb.retrieval.bm25 import BM25Index

    base = dict(start=0, end=10, retrieved="2026-01-01T00:00:00Z", url="u", valid_from=0, valid_to=FOREVER,
                published="", source="s", publisher="P", doctype="tos", language="en", doc_language="en")
    rows = [dict(base, chunk_id=f"v{i}-0000", version_id=f"v{i}", doc_id=f"d{i}", title=f"Title {i}", text=t)
            for i, t in enumerate(["the court denied the motion", "distillation of models is forbidden",
                                   "the court granted summary judgment in part"])]
    cat = ChunkCatalogue(rows)
    fresh = BM25Index(cat, None, 1)
    first = BM25Index(cat, tmp_path / "bm25", 1)      # builds, saves, then maps the saved copy
    again = BM25Index(cat, tmp_path / "bm25", 1)      # loads the cache
    for idx in (first, again):
        assert isinstance(idx.model.scores["data"], np.memmap)
        assert np.allclose(idx.scores(["court", "motion"]), fresh.scores(["court", "motion"]))
        assert idx.idf("court") == fresh.idf("court") > 0


def test_top_rows_is_exact_over_large_score_arrays_with_ties() -> None:
    """The sampled cut of ``top_rows`` never loses one of the n best rows (ties included)."""
    from kb.retrieval.retriever import top_rows

    rng = np.random.default_rng(5)
    for _ in range(40):
        m = int(rng.integers(1, 200_000))
        scores = np.zeros(m, np.float32)
        k = int(rng.integers(0, m + 1))
        scores[rng.choice(m, k, replace=False)] = (rng.integers(1, int(rng.integers(2, 500)), k) / 3).astype(np.float32)
        n = int(rng.integers(1, 120))
        best = sorted((int(i) for i in np.flatnonzero(scores > 0)), key=lambda i: (-float(scores[i]), i))[:n]
        assert [scores[i] for i in top_rows(scores, n)] == [scores[i] for i in best]


def test_catalogue_reads_texts_on_demand_and_keeps_a_bounded_cache(monkeypatch) -> None:
    import kb.retrieval.catalogue as catalogue

    rows = [{k: v for k, v in r.items()} for r in _catalog().rows]
    stored = {r["chunk_id"]: f"text of {r['chunk_id']}" for r in rows}
    asked: list[list[str]] = []

    def lookup(ids):
        asked.append(list(ids))
        return {i: stored[i] for i in ids if i in stored}

    cat = ChunkCatalogue(rows, lookup)
    assert "text" not in cat.rows[0], "an app process holds no chunk text"
    assert [p.text for p in cat.passages([2, 0], [0.5, 0.1])] == ["text of v3-0000", "text of v1-0000"]
    assert asked == [["v3-0000", "v1-0000"]]
    assert cat.passage(2).text == "text of v3-0000" and len(asked) == 1, "read once, then cached"
    assert list(cat.iter_texts()) == [stored[r["chunk_id"]] for r in rows]
    monkeypatch.setattr(catalogue, "TEXT_CACHE", 1)
    assert cat.passage(1).text == "text of v2-0000" and len(cat._text_cache) <= 2
    del stored["v1-0000"]   # pruned since the catalogue was loaded: an empty text, not an error
    cat._text_cache.clear()
    assert cat.passage(0).text == ""
