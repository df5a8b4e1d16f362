"""Fusion of the dense and BM25 rankings (weighted reciprocal-rank fusion) and near-duplicate checks.
"""
from __future__ import annotations

from typing import AbstractSet as Set
from typing import Any, Sequence

#: Reciprocal-rank constant and weights (dense, BM25), measured with ``python -m kb eval``.
RRF_K = 60


DENSE_WEIGHT = 1.0


BM25_WEIGHT = 0.5


#: BM25's weight is scaled by the share of question tokens the index knows, but never below this.
MIN_COVERAGE = 0.25


#: Token-set Jaccard at or above which two passages count as the same text.
NEAR_DUPLICATE = 0.8


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
