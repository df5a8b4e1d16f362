"""Exact and near-duplicate detection before embedding.

Exact: the SHA-256 of the normalised text (case, punctuation, whitespace and line wrapping ignored).
Near: MinHash over word 5-shingles (character 4-shingles for scripts written without spaces),
indexed with LSH (``datasketch``); a candidate is confirmed by its estimated Jaccard similarity.
Only *other* documents are compared: a changed text at the same URL is a new version, never a duplicate.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

import numpy as np
from datasketch import MinHash, MinHashLSH

NUM_PERM = 128
THRESHOLD = 0.7
SCHEME = "affine32"  # stored signatures depend on it: never change without re-signing
_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|[^\W_]+", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def normalise(text: str) -> list[str]:
    """Case-folded word tokens (CJK as single characters), punctuation and layout dropped."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _TOKEN.findall(text)


def exact_key(text: str) -> str:
    """Hash of the normalised token stream: equal for re-wrapped or re-punctuated copies."""
    return hashlib.sha256(" ".join(normalise(text)).encode("utf-8")).hexdigest()


def shingles(text: str) -> set[str]:
    """Word 5-shingles, or character 4-shingles where the text is mostly CJK."""
    tokens = normalise(text)
    k = 4 if tokens and sum(1 for t in tokens if _CJK.match(t)) > len(tokens) / 2 else 5
    if len(tokens) <= k:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i:i + k]) for i in range(len(tokens) - k + 1)}


def signature(text: str) -> MinHash:
    """MinHash signature of a text."""
    m = MinHash(num_perm=NUM_PERM, seed=1, scheme=SCHEME)
    m.update_batch([s.encode("utf-8") for s in shingles(text)])
    return m


def signature_bytes(m: MinHash) -> bytes:
    return np.asarray(m.hashvalues, dtype=np.uint32).tobytes()


def signature_from_bytes(data: bytes) -> MinHash:
    return MinHash(num_perm=NUM_PERM, seed=1, scheme=SCHEME, hashvalues=np.frombuffer(data, dtype=np.uint32).copy())


@dataclass(frozen=True)
class Match:
    """A document that the new text duplicates."""

    doc_id: str
    kind: str      # exact | near
    score: float   # estimated Jaccard similarity (1.0 for exact)


class DuplicateIndex:
    """Canonical documents seen so far (loaded from the registry, grown during a run)."""

    def __init__(self, threshold: float = THRESHOLD) -> None:
        self.threshold = threshold
        self._lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        self._sigs: dict[str, MinHash] = {}
        self._exact: dict[str, str] = {}

    def add(self, doc_id: str, key: str, sig: MinHash) -> None:
        """Register (or replace) a canonical document's latest text."""
        if doc_id in self._sigs:
            self._lsh.remove(doc_id)
            self._exact = {k: d for k, d in self._exact.items() if d != doc_id}
        self._sigs[doc_id] = sig
        self._lsh.insert(doc_id, sig)
        self._exact.setdefault(key, doc_id)

    def find(self, doc_id: str, key: str, sig: MinHash) -> Match | None:
        """The best duplicate of this text among other documents, if any."""
        other = self._exact.get(key)
        if other and other != doc_id:
            return Match(other, "exact", 1.0)
        best: Match | None = None
        for cand in self._lsh.query(sig):
            if cand == doc_id:
                continue
            score = float(sig.jaccard(self._sigs[cand]))
            if score >= self.threshold and (best is None or score > best.score or
                                            (score == best.score and cand < best.doc_id)):
                best = Match(cand, "near", score)
        return best
