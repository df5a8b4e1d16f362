"""Precision/recall of duplicate detectors on labelled pairs from ../shared: MinHash-LSH vs trafilatura Simhash.

    python bench/dedup.py
"""
from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trafilatura.deduplication import Simhash

from ingest import dedup
from tests.fixtures.dedup_pairs import SHARED, labelled_pairs


def minhash_same(a: str, b: str) -> bool:
    index = dedup.DuplicateIndex()
    index.add("a", dedup.exact_key(a), dedup.signature(a))
    return index.find("b", dedup.exact_key(b), dedup.signature(b)) is not None


def simhash_same(a: str, b: str, threshold: float = 0.9) -> bool:
    return Simhash(a).similarity(Simhash(b)) >= threshold


def score(detector, pairs) -> dict[str, float]:
    tp = fp = fn = tn = 0
    misses: dict[str, int] = defaultdict(int)
    t0 = time.perf_counter()
    for p in pairs:
        said = detector(p.a, p.b)
        if said and p.duplicate:
            tp += 1
        elif said:
            fp += 1
            misses[f"false+ {p.kind}"] += 1
        elif p.duplicate:
            fn += 1
            misses[f"false- {p.kind}"] += 1
        else:
            tn += 1
    out: dict[str, Any] = {"precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1), "tp": tp, "fp": fp, "fn": fn,
            "tn": tn, "ms_per_pair": 1000 * (time.perf_counter() - t0) / len(pairs), "errors": dict(misses)}
    return out


def main() -> int:
    if not (SHARED / "corpus").is_dir():
        print(f"shared documents not found at {SHARED}; set KB_SHARED_DIR", file=sys.stderr)
        return 2
    pairs = labelled_pairs()
    pos = sum(p.duplicate for p in pairs)
    print(f"{len(pairs)} labelled pairs ({pos} duplicates, {len(pairs) - pos} distinct) from {SHARED}")
    print(f"{'detector':28} {'precision':>9} {'recall':>7} {'ms/pair':>8}  errors")
    for name, det in [("minhash-lsh (j>=0.7)", minhash_same), ("simhash (sim>=0.9)", simhash_same),
                      ("simhash (sim>=0.8)", lambda a, b: simhash_same(a, b, 0.8))]:
        r = score(det, pairs)
        print(f"{name:28} {r['precision']:9.3f} {r['recall']:7.3f} {r['ms_per_pair']:8.2f}  {r['errors'] or '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
