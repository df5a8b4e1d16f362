"""The duplicate detector on labelled pairs built from ../shared, and its identity rules."""
from __future__ import annotations

from pathlib import Path

from ingest import dedup
from tests.fixtures.dedup_pairs import labelled_pairs


def test_precision_and_recall_on_labelled_pairs(shared_dir: Path) -> None:
    pairs = labelled_pairs(shared_dir)
    tp = fp = fn = 0
    for p in pairs:
        idx = dedup.DuplicateIndex()
        idx.add("a", dedup.exact_key(p.a), dedup.signature(p.a))
        said = idx.find("b", dedup.exact_key(p.b), dedup.signature(p.b)) is not None
        tp += said and p.duplicate
        fp += said and not p.duplicate
        fn += (not said) and p.duplicate
    assert tp / (tp + fp) >= 0.99
    assert tp / (tp + fn) >= 0.95


def test_version_pairs_are_not_duplicates(shared_dir: Path) -> None:
    for p in labelled_pairs(shared_dir):
        if p.kind == "version-pair":
            idx = dedup.DuplicateIndex()
            idx.add("old", dedup.exact_key(p.a), dedup.signature(p.a))
            assert idx.find("new", dedup.exact_key(p.b), dedup.signature(p.b)) is None


def test_same_document_never_matches_itself() -> None:
    text = "The court denied the motion for a preliminary injunction. " * 20
    idx = dedup.DuplicateIndex()
    idx.add("doc", dedup.exact_key(text), dedup.signature(text))
    assert idx.find("doc", dedup.exact_key(text), dedup.signature(text)) is None
    m = idx.find("copy", dedup.exact_key(text.upper()), dedup.signature(text.upper()))
    assert m is not None and m.kind == "exact" and m.doc_id == "doc"


def test_cjk_text_uses_character_shingles() -> None:
    a = "马斯克在加州联邦法院作证称，xAI 部分使用了蒸馏技术来训练 Grok 模型。" * 5
    b = "转载：" + a
    idx = dedup.DuplicateIndex()
    idx.add("a", dedup.exact_key(a), dedup.signature(a))
    assert idx.find("b", dedup.exact_key(b), dedup.signature(b)) is not None


def test_signature_roundtrip() -> None:
    s = dedup.signature("some text about terms of service and competing models")
    assert dedup.signature_from_bytes(dedup.signature_bytes(s)).jaccard(s) == 1.0
